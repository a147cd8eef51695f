package dissect

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// dm-verity, as systemd-nspawn finds its pieces for an image (the runtime,
// package spawn, sets up the device):
//
//   - the root hash: --root-hash=, else the image's user.verity.roothash
//     extended attribute or the file IMAGE.roothash beside it (for the root
//     partition), else user.verity.usrhash or IMAGE.usrhash (for /usr), else
//     the "rootHash" of the JSON in the root-verity-sig partition;
//   - the signature of the root hash (PKCS#7, checked by the kernel):
//     --root-hash-sig=, else IMAGE.roothash.p7s (IMAGE.usrhash.p7s), else the
//     "signature" of that JSON;
//   - the hash tree: the root-verity (usr-verity) partition of a GPT image,
//     or for an image without partition table (a bare file system)
//     --verity-data= or the file IMAGE.verity beside it.
//
// IMAGE here is the image's path without its .raw suffix. With a root hash,
// a GPT image's data partition is the one whose UUID is the root hash's
// first 128 bits and its verity partition the one whose UUID is the last
// 128 bits (the Discoverable Partitions Specification's rule), so that one
// image may carry several versions.

// VeritySettings is what is known about an image's verity before it is
// dissected: from the command line and the files beside the image.
type VeritySettings struct {
	// Designator is the data partition the root hash is for: Root or Usr
	// (a .usrhash file); Root when nothing says.
	Designator Designator
	RootHash   []byte
	Sig        []byte // PKCS#7 signature of the root hash (hex text), nil for none
	// DataPath is the hash tree of a bare image (--verity-data=,
	// IMAGE.verity), "" for a GPT image's verity partition.
	DataPath string
	// Where each came from, for messages: "--root-hash=", a file's path,
	// "the root-verity-sig partition".
	RootHashFrom, SigFrom, DataFrom string
}

// Verity is the dm-verity set-up Dissect decided on for an image.
type Verity struct {
	Data     Designator // Root or Usr: the partition opened through dm-verity
	Hash     *Partition // the verity partition; nil when the hash tree is DataPath
	DataPath string     // the hash tree's file (a bare image)
	RootHash []byte
	Sig      []byte // nil: unsigned
	// Signed is what the image policy sees: as in systemd, a GPT image is
	// signed when it has the signature partition, a bare one when a
	// signature is given.
	Signed                          bool
	RootHashFrom, SigFrom, DataFrom string
}

// RootHashHex is the root hash as veritysetup takes it.
func (v *Verity) RootHashHex() string { return hex.EncodeToString(v.RootHash) }

// VerityInput is what the user gave: the image's path and the verity
// options as netspawn's configuration holds them (the root hash in hex, the
// signature as "base64:..." or a file's path).
type VerityInput struct {
	Image, RootHash, RootHashSig, VerityData string
}

// AuxiliaryPath is the path of a file beside image with suffix: image's
// path without .raw, then the suffix.
func AuxiliaryPath(image, suffix string) string {
	return strings.TrimSuffix(image, ".raw") + suffix
}

// isDevicePath says image names a device: nspawn looks for no files
// beside those.
func isDevicePath(image string) bool {
	return strings.HasPrefix(image, "/dev/") || strings.HasPrefix(image, "/sys/")
}

// maxSidecar bounds what is read of a root hash or signature file.
const maxSidecar = 4 << 20

// readSmall reads a file of at most maxSidecar bytes; a missing file is
// (nil, nil).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSidecar+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxSidecar {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a root hash or signature", path, maxSidecar)
	}
	return b, nil
}

// ParseRootHashText reads a root hash from text: hex, surrounding white
// space ignored; at least 256 bits (nspawn needs 2×128 for the partition
// UUIDs; the Discoverable Partitions Specification's hashes are SHA-256).
func ParseRootHashText(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i]) // the first line, as nspawn reads it
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a hexadecimal root hash", s)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("root hash %s has %d bits: a root hash has at least 256", s, 8*len(b))
	}
	return b, nil
}

// LoadVerity gathers the verity settings of an image from what the user
// gave and the files beside the image, as nspawn's verity_settings_load:
// the command line first, then the extended attributes and files, only
// what is not known yet. No root hash, no signature and no hash file is
// (a zero VeritySettings with Designator Root, nil).
func LoadVerity(in VerityInput) (*VeritySettings, error) {
	s := &VeritySettings{Designator: -1}
	if in.RootHash != "" {
		h, err := ParseRootHashText(in.RootHash)
		if err != nil {
			return nil, fmt.Errorf("--root-hash=: %w", err)
		}
		s.RootHash, s.RootHashFrom = h, "--root-hash="
	}
	if in.RootHashSig != "" {
		sig, err := loadSigArg(in.RootHashSig)
		if err != nil {
			return nil, err
		}
		s.Sig, s.SigFrom = sig, "--root-hash-sig="
	}
	if in.VerityData != "" {
		s.DataPath, s.DataFrom = in.VerityData, "--verity-data="
	}
	sidecars := in.Image != "" && !isDevicePath(in.Image)
	if sidecars && s.RootHash == nil {
		for _, c := range []struct {
			d           Designator
			xattr, file string
		}{{Root, "user.verity.roothash", ".roothash"}, {Usr, "user.verity.usrhash", ".usrhash"}} {
			text, from, err := readXattrOrFile(in.Image, c.xattr, AuxiliaryPath(in.Image, c.file))
			if err != nil {
				return nil, err
			}
			if text == nil {
				continue
			}
			h, err := ParseRootHashText(string(text))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", from, err)
			}
			s.RootHash, s.RootHashFrom, s.Designator = h, from, c.d
			break
		}
	}
	if sidecars && s.RootHash != nil && s.Sig == nil {
		files := []struct {
			d    Designator
			file string
		}{{Root, ".roothash.p7s"}, {Usr, ".usrhash.p7s"}}
		for _, c := range files {
			if s.Designator >= 0 && s.Designator != c.d {
				continue
			}
			p := AuxiliaryPath(in.Image, c.file)
			sig, err := readSmall(p)
			if err != nil {
				return nil, err
			}
			if sig == nil {
				continue
			}
			if len(sig) == 0 {
				return nil, fmt.Errorf("%s is empty: not a root hash signature", p)
			}
			s.Sig, s.SigFrom, s.Designator = sig, p, c.d
			break
		}
	}
	if sidecars && s.DataPath == "" {
		p := AuxiliaryPath(in.Image, ".verity")
		if _, err := os.Stat(p); err == nil {
			s.DataPath, s.DataFrom = p, p
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("verity data %s: %w", p, err)
		}
	}
	if s.Designator < 0 {
		s.Designator = Root
	}
	return s, nil
}

// loadSigArg reads --root-hash-sig=: "base64:..." or a file.
func loadSigArg(v string) ([]byte, error) {
	if b, ok := strings.CutPrefix(v, "base64:"); ok {
		sig, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return nil, fmt.Errorf("--root-hash-sig=base64:...: not valid base64: %w", err)
		}
		if len(sig) == 0 {
			return nil, errors.New("--root-hash-sig=base64: holds no signature")
		}
		return sig, nil
	}
	sig, err := readSmall(v)
	if err != nil {
		return nil, fmt.Errorf("--root-hash-sig=%s: %w", v, err)
	}
	if sig == nil {
		return nil, fmt.Errorf("--root-hash-sig=%s: no such file", v)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("--root-hash-sig=%s: the file is empty", v)
	}
	return sig, nil
}

// readXattrOrFile reads the extended attribute name of image, else the
// file; (nil, "", nil) when neither exists.
func readXattrOrFile(image, name, file string) ([]byte, string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(image, name, buf)
	switch {
	case err == nil:
		return buf[:n], "extended attribute " + name + " of " + image, nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ERANGE):
		// ERANGE: longer than any root hash; the file decides.
	default:
		return nil, "", fmt.Errorf("reading extended attribute %s of %s: %w", name, image, err)
	}
	b, err := readSmall(file)
	if err != nil || b == nil {
		return nil, "", err
	}
	return b, file, nil
}

// UUIDsOfRootHash are the partition UUIDs the Discoverable Partitions
// Specification derives from a root hash: the data partition's is its
// first 128 bits, the verity partition's its last 128 bits (as UUIDs are
// written: the hash's bytes in order).
func UUIDsOfRootHash(h []byte) (data, verity GUID, err error) {
	if len(h) < 32 {
		return data, verity, fmt.Errorf("root hash of %d bits: the partition UUIDs need at least 256", 8*len(h))
	}
	data, err = ParseGUID(uuidText(h[:16]))
	if err != nil {
		return data, verity, err
	}
	verity, err = ParseGUID(uuidText(h[len(h)-16:]))
	if err != nil {
		return data, verity, err
	}
	if data == (GUID{}) || verity == (GUID{}) {
		return data, verity, errors.New("root hash whose first or last 128 bits are zero: no partition UUID")
	}
	return data, verity, nil
}

func uuidText(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ParseSigPartition reads the JSON of a root-verity-sig (usr-verity-sig)
// partition: {"rootHash": hex, "signature": base64, ...}, padded with NUL
// bytes to the partition's size.
func ParseSigPartition(buf []byte) (rootHash, sig []byte, err error) {
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		for _, c := range buf[i:] {
			if c != 0 {
				return nil, nil, errors.New("the signature JSON is followed by data other than NUL bytes")
			}
		}
		buf = buf[:i]
	}
	var v struct {
		RootHash  *string `json:"rootHash"`
		Signature *string `json:"signature"`
	}
	if err := json.Unmarshal(buf, &v); err != nil {
		return nil, nil, fmt.Errorf("the signature partition does not hold JSON: %w", err)
	}
	if v.RootHash == nil {
		return nil, nil, errors.New(`the signature JSON lacks "rootHash"`)
	}
	if v.Signature == nil {
		return nil, nil, errors.New(`the signature JSON lacks "signature"`)
	}
	rootHash, err = ParseRootHashText(*v.RootHash)
	if err != nil {
		return nil, nil, fmt.Errorf(`the signature JSON's "rootHash": %w`, err)
	}
	sig, err = base64.StdEncoding.DecodeString(*v.Signature)
	if err != nil || len(sig) == 0 {
		return nil, nil, errors.New(`the signature JSON's "signature" is not a non-empty base64 string`)
	}
	return rootHash, sig, nil
}

// maxSigPartition is the largest signature partition read (nspawn's
// limit).
const maxSigPartition = 4 << 20

// readSigPartition reads and parses a signature partition.
func readSigPartition(r io.ReaderAt, p *Partition) ([]byte, []byte, error) {
	if p.Size > maxSigPartition {
		return nil, nil, fmt.Errorf("partition %d (%s) is larger than 4 MiB: not a signature partition", p.Number, p.Designator)
	}
	buf := make([]byte, p.Size)
	if _, err := r.ReadAt(buf, p.Offset); err != nil {
		return nil, nil, fmt.Errorf("reading partition %d (%s): %w", p.Number, p.Designator, err)
	}
	h, sig, err := ParseSigPartition(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("partition %d (%s): %w", p.Number, p.Designator, err)
	}
	return h, sig, nil
}

// verityPartition is the verity partition of data (RootVerity of Root).
func verityPartition(data Designator) (Designator, Designator) {
	if data == Usr {
		return UsrVerity, UsrVeritySig
	}
	return RootVerity, RootVeritySig
}

// gptVerity decides the dm-verity set-up of a GPT image: the data
// partition the settings name, its verity partition, and the root hash and
// signature from the settings or the signature partition.
func gptVerity(r io.ReaderAt, m *Image, vs *VeritySettings, verityUUID GUID, ignored map[Designator]bool) (*Verity, error) {
	vd, sd := verityPartition(vs.Designator)
	v := &Verity{Data: vs.Designator, RootHash: vs.RootHash, Sig: vs.Sig,
		RootHashFrom: vs.RootHashFrom, SigFrom: vs.SigFrom}
	if sp := m.Partitions[sd]; sp != nil && (v.RootHash == nil || v.Sig == nil) {
		h, sig, err := readSigPartition(r, sp)
		if err != nil {
			return nil, err
		}
		from := fmt.Sprintf("partition %d (%s)", sp.Number, sd)
		if v.RootHash != nil && !bytes.Equal(h, v.RootHash) {
			return nil, fmt.Errorf("the root hash in %s (%x) is not the one from %s (%x)", from, h, v.RootHashFrom, v.RootHash)
		}
		if v.RootHash == nil {
			v.RootHash, v.RootHashFrom = h, from
		}
		v.Sig, v.SigFrom = sig, from
	}
	v.Signed = m.Partitions[sd] != nil
	hp := m.Partitions[vd]
	if v.RootHash == nil {
		m.VerityUnused = hp != nil
		return nil, nil
	}
	data := m.Partitions[v.Data]
	switch {
	case data == nil && ignored[v.Data]:
		return nil, nil // the policy leaves it unused: nothing to protect
	case data == nil:
		return nil, fmt.Errorf("the root hash from %s is for the %s partition, which the image lacks", v.RootHashFrom, v.Data)
	case hp == nil && ignored[vd]:
		return nil, fmt.Errorf("the root hash from %s needs the %s partition, which the image policy leaves unused", v.RootHashFrom, vd)
	case hp == nil:
		want := ""
		if verityUUID != (GUID{}) {
			want = fmt.Sprintf(" whose UUID is %s (the root hash's last 128 bits)", verityUUID)
		}
		return nil, fmt.Errorf("the root hash from %s needs a %s partition%s, and the image has none", v.RootHashFrom, vd, want)
	}
	v.Hash = hp
	data.ReadWrite = false
	return v, nil
}

// bareVerity decides the dm-verity set-up of an image without a
// partition table: the hash tree is a file beside it.
func bareVerity(vs *VeritySettings) (*Verity, error) {
	switch {
	case vs.RootHash == nil && vs.DataFrom == "--verity-data=":
		return nil, errors.New("--verity-data= needs the root hash: give --root-hash= or put it in IMAGE.roothash")
	case vs.RootHash == nil:
		return nil, nil
	case vs.Designator != Root:
		return nil, fmt.Errorf("the root hash from %s is for a /usr partition, but the image is a bare file system (no partition table)", vs.RootHashFrom)
	case vs.DataPath == "":
		return nil, fmt.Errorf("the root hash from %s needs the hash tree: the image is a bare file system (no partition table), so give --verity-data=FILE or put it in %s",
			vs.RootHashFrom, "IMAGE.verity")
	}
	return &Verity{Data: Root, DataPath: vs.DataPath, RootHash: vs.RootHash, Sig: vs.Sig, Signed: vs.Sig != nil,
		RootHashFrom: vs.RootHashFrom, SigFrom: vs.SigFrom, DataFrom: vs.DataFrom}, nil
}
