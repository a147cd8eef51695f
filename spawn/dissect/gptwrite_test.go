package dissect

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"
)

// testPart is a partition for buildGPT: its type, size in MiB, attributes,
// label, and the file system magic to write at its start ("" none).
type testPart struct {
	typ   GUID
	mib   int64
	flags uint64
	label string
	fs    string
	uuid  GUID   // zero: one made from the entry's number
	data  []byte // written at the partition's start (after fs's magic)
}

// memImage is an image in memory (io.ReaderAt).
type memImage []byte

func (m memImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, bytes.ErrTooLarge
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, bytes.ErrTooLarge
	}
	return n, nil
}

// writeFSMagic puts the signature ProbeFS knows for fs at off.
func writeFSMagic(img []byte, off int64, fs string) {
	for _, m := range magics {
		if m.fstype == fs {
			copy(img[off+m.off:], m.sig)
			return
		}
	}
	panic("no magic for " + fs)
}

// buildGPT writes a GUID partition table with 512-byte sectors: the
// primary header at LBA 1, 128 entries from LBA 2, partitions from 1 MiB.
func buildGPT(parts []testPart) memImage {
	const ss = 512
	total := int64(2) // MiB: the first before the partitions, one at the end for the backup
	for _, p := range parts {
		total += p.mib
	}
	img := make([]byte, total<<20)
	le := binary.LittleEndian
	// Protective MBR.
	img[446+4] = 0xee
	le.PutUint32(img[446+8:], 1)
	le.PutUint32(img[446+12:], uint32(int64(len(img))/ss-1))
	img[510], img[511] = 0x55, 0xaa
	ents := make([]byte, 128*128)
	lba := int64(1 << 20 / ss)
	for i, p := range parts {
		e := ents[i*128:]
		copy(e[0:16], p.typ[:])
		e[16] = byte(i + 1) // a unique GUID, good enough
		if p.uuid != (GUID{}) {
			copy(e[16:32], p.uuid[:])
		}
		n := p.mib << 20 / ss
		le.PutUint64(e[32:], uint64(lba))
		le.PutUint64(e[40:], uint64(lba+n-1))
		le.PutUint64(e[48:], p.flags)
		for j, c := range utf16.Encode([]rune(p.label)) {
			le.PutUint16(e[56+2*j:], c)
		}
		if p.fs != "" {
			writeFSMagic(img, lba*ss, p.fs)
		}
		copy(img[lba*ss:], p.data)
		lba += n
	}
	copy(img[2*ss:], ents)
	h := img[ss : ss+92]
	copy(h, "EFI PART")
	le.PutUint32(h[8:], 0x00010000)
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], 1)
	le.PutUint64(h[32:], uint64(int64(len(img))/ss-1))
	le.PutUint64(h[40:], 34)
	le.PutUint64(h[48:], uint64(int64(len(img))/ss-34))
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], 128)
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	return img
}
