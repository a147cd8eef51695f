package images

import (
	"bytes"
	"fmt"
	"strings"
)

// Compression is a tar stream's outer compression.
type Compression int

// The compressions import-tar, export-tar and pull-tar know.
const (
	None Compression = iota
	Gzip
	XZ
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case XZ:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return "none"
}

// CompressionFromName picks the compression from a file name's extension:
// .gz/.tgz gzip, .xz/.txz xz, .zst/.zstd/.tzst zstd, anything else none.
func CompressionFromName(name string) Compression {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".gz"), strings.HasSuffix(n, ".tgz"):
		return Gzip
	case strings.HasSuffix(n, ".xz"), strings.HasSuffix(n, ".txz"):
		return XZ
	case strings.HasSuffix(n, ".zst"), strings.HasSuffix(n, ".zstd"), strings.HasSuffix(n, ".tzst"):
		return Zstd
	}
	return None
}

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// DetectCompression looks at the first bytes of a stream (at least 6 for a
// sure answer). Imports trust the content over the file name.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return Gzip
	case bytes.HasPrefix(head, magicXZ):
		return XZ
	case bytes.HasPrefix(head, magicZstd):
		return Zstd
	}
	return None
}

// ParseCompression reads a --format value (none, gzip/gz, xz, zstd/zst).
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "", "none", "uncompressed", "tar":
		return None, nil
	case "gzip", "gz":
		return Gzip, nil
	case "xz":
		return XZ, nil
	case "zstd", "zst":
		return Zstd, nil
	}
	return None, fmt.Errorf("unknown compression %q (none, gzip, xz, zstd)", s)
}
