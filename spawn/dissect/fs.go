package dissect

import (
	"bytes"
	"io"
)

// magic is one file system signature: bytes at an offset.
type magic struct {
	fstype string
	off    int64
	sig    []byte
}

var magics = []magic{
	{"crypto_LUKS", 0, []byte("LUKS\xba\xbe")},
	{"squashfs", 0, []byte("hsqs")},
	{"xfs", 0, []byte("XFSB")},
	{"ext4", 0x438, []byte{0x53, 0xef}}, // ext2/3/4: the ext4 driver mounts them all
	{"erofs", 1024, []byte{0xe2, 0xe1, 0xf5, 0xe0}},
	{"btrfs", 0x10040, []byte("_BHRfS_M")},
	{"vfat", 0x52, []byte("FAT32   ")},
	{"vfat", 0x36, []byte("FAT16   ")},
	{"vfat", 0x36, []byte("FAT12   ")},
	{"swap", 4086, []byte("SWAPSPACE2")},
}

// ProbeFS names the file system that starts at off in r (within size
// bytes), or "" when it knows none.
func ProbeFS(r io.ReaderAt, off, size int64) string {
	for _, m := range magics {
		if m.off+int64(len(m.sig)) > size {
			continue
		}
		b := make([]byte, len(m.sig))
		if _, err := r.ReadAt(b, off+m.off); err != nil {
			continue
		}
		if bytes.Equal(b, m.sig) {
			return m.fstype
		}
	}
	return ""
}

// ReadOnlyFS reports a file system type the kernel can only mount
// read-only.
func ReadOnlyFS(fstype string) bool {
	switch fstype {
	case "squashfs", "erofs", "iso9660":
		return true
	}
	return false
}
