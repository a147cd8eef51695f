// Package dissect reads a disk image the way systemd-nspawn's --image=
// does, without touching the kernel: a GUID partition table with the
// Discoverable Partitions Specification's type GUIDs, or a bare file
// system; which partition is the root, /usr, /home and /srv; the file
// system in each; and the image policy (--image-policy=) that may refuse
// them. It reads through an io.ReaderAt and needs no privileges: the
// runtime (package spawn) does the loop devices and mounts.
package dissect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// GUID is a GPT GUID in its on-disk byte order (the first three fields
// little-endian).
type GUID [16]byte

// ParseGUID reads the textual form 01234567-89ab-cdef-0123-456789abcdef.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("invalid GUID %q", s)
	}
	var raw [16]byte
	for i := 0; i < 16; i++ {
		var b byte
		for _, c := range h[2*i : 2*i+2] {
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = byte(c - '0')
			case c >= 'a' && c <= 'f':
				v = byte(c-'a') + 10
			case c >= 'A' && c <= 'F':
				v = byte(c-'A') + 10
			default:
				return g, fmt.Errorf("invalid GUID %q", s)
			}
			b = b<<4 | v
		}
		raw[i] = b
	}
	// time_low, time_mid, time_hi are little-endian on disk.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err) // only for the constant table below
	}
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8:10], g[10:16])
}

// GPT partition attribute bits the specification gives a meaning.
const (
	FlagRequired = uint64(1) << 0
	FlagGrowFS   = uint64(1) << 59
	FlagReadOnly = uint64(1) << 60
	FlagNoAuto   = uint64(1) << 63
)

// Entry is one used entry of a partition table.
type Entry struct {
	Number int // 1-based, as the kernel numbers partitions
	Type   GUID
	UUID   GUID
	Offset int64 // bytes from the start of the image
	Size   int64 // bytes
	Flags  uint64
	Label  string
}

// ErrNoGPT says the image has no (valid) GUID partition table.
var ErrNoGPT = errors.New("no GUID partition table")

const maxEntries = 1024 // far more than any real table; bounds what a corrupt header makes us read

// ReadGPT reads the primary GUID partition table of an image of size
// bytes, trying 512- and 4096-byte sectors. It checks both CRCs and the
// entries' bounds.
func ReadGPT(r io.ReaderAt, size int64) ([]Entry, int, error) {
	var firstErr error
	for _, ss := range []int64{512, 4096} {
		es, err := readGPT(r, size, ss)
		if err == nil {
			return es, int(ss), nil
		}
		if !errors.Is(err, ErrNoGPT) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return nil, 0, ErrNoGPT
}

func readGPT(r io.ReaderAt, size, ss int64) ([]Entry, error) {
	if size < 3*ss {
		return nil, ErrNoGPT
	}
	hdr := make([]byte, ss)
	if _, err := r.ReadAt(hdr, ss); err != nil {
		return nil, fmt.Errorf("reading the partition table header: %w", err)
	}
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return nil, ErrNoGPT
	}
	le := binary.LittleEndian
	hsize := le.Uint32(hdr[12:])
	if hsize < 92 || int64(hsize) > ss {
		return nil, fmt.Errorf("corrupt GUID partition table: header size %d", hsize)
	}
	h := append([]byte(nil), hdr[:hsize]...)
	want := le.Uint32(h[16:])
	copy(h[16:20], []byte{0, 0, 0, 0})
	if crc32.ChecksumIEEE(h) != want {
		return nil, errors.New("corrupt GUID partition table: the header's checksum does not match")
	}
	if le.Uint64(hdr[24:]) != 1 {
		return nil, errors.New("corrupt GUID partition table: the primary header is not at LBA 1")
	}
	entLBA := le.Uint64(hdr[72:])
	n := le.Uint32(hdr[80:])
	esz := le.Uint32(hdr[84:])
	ecrc := le.Uint32(hdr[88:])
	if esz < 128 || esz > 4096 || esz%8 != 0 || n > maxEntries {
		return nil, fmt.Errorf("corrupt GUID partition table: %d entries of %d bytes", n, esz)
	}
	tlen := int64(n) * int64(esz)
	if entLBA < 2 || int64(entLBA) > size/ss || int64(entLBA)*ss+tlen > size {
		return nil, errors.New("corrupt GUID partition table: the entries lie outside the image")
	}
	tbl := make([]byte, tlen)
	if _, err := r.ReadAt(tbl, int64(entLBA)*ss); err != nil {
		return nil, fmt.Errorf("reading the partition table entries: %w", err)
	}
	if crc32.ChecksumIEEE(tbl) != ecrc {
		return nil, errors.New("corrupt GUID partition table: the entries' checksum does not match")
	}
	var out []Entry
	for i := 0; i < int(n); i++ {
		e := tbl[i*int(esz) : (i+1)*int(esz)]
		var t GUID
		copy(t[:], e[:16])
		if t == (GUID{}) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if last < first || last >= uint64(size/ss) {
			return nil, fmt.Errorf("corrupt GUID partition table: partition %d lies outside the image", i+1)
		}
		var id GUID
		copy(id[:], e[16:32])
		out = append(out, Entry{
			Number: i + 1,
			Type:   t,
			UUID:   id,
			Offset: int64(first) * ss,
			Size:   int64(last-first+1) * ss,
			Flags:  le.Uint64(e[48:]),
			Label:  utf16Label(e[56:128]),
		})
	}
	return out, nil
}

func utf16Label(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
