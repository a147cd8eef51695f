package dissect

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
)

// archTypes are the architecture-specific type GUIDs of one architecture.
type archTypes struct {
	name                                              string
	root, rootVerity, rootSig, usr, usrVerity, usrSig GUID
}

var archs = map[string]archTypes{
	"amd64": {"x86-64",
		mustGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709"), mustGUID("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"), mustGUID("41092b05-9fc8-4523-994f-2def0408b176"),
		mustGUID("8484680c-9521-48c6-9c11-b0720656f69e"), mustGUID("77ff5f63-e7b6-4633-acf4-1565b864c0e6"), mustGUID("e7bb33fb-06cf-4e81-8273-e543b413e2e2")},
	"arm64": {"arm64",
		mustGUID("b921b045-1df0-41c3-af44-4c6f280d3fae"), mustGUID("df3300ce-d69f-4c92-978c-9bfb0f38d820"), mustGUID("6db69de6-29f4-4758-a7a5-962190f00ce3"),
		mustGUID("b0e01050-ee5f-4390-949a-9101b17104e9"), mustGUID("6e11a4e7-fbca-4ded-b9e9-e1a512bb664e"), mustGUID("c23ce4ff-44bd-4b00-b2d4-b41b3419e02a")},
}

// Architecture-independent type GUIDs.
var (
	TypeESP          = mustGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	TypeXBootLdr     = mustGUID("bc13c2ff-59e6-4262-a352-b275fd6f7172")
	TypeSwap         = mustGUID("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f")
	TypeHome         = mustGUID("933ac7e1-2eb4-4f13-b844-0e14e2aef915")
	TypeSrv          = mustGUID("3b8f8425-20e0-4f3b-907f-1a25a76f98e8")
	TypeVar          = mustGUID("4d21b016-b534-45c2-a9fb-5c16e091fd2d")
	TypeTmp          = mustGUID("7ec6f557-3bc5-4aca-b293-16ef5df639d1")
	TypeLinuxGeneric = mustGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
)

// RootType is the root partition's type GUID for a Go architecture
// (runtime.GOARCH), false for one the specification's table here lacks.
func RootType(goarch string) (GUID, bool) { a, ok := archs[goarch]; return a.root, ok }

// UsrType is the /usr partition's type GUID for a Go architecture.
func UsrType(goarch string) (GUID, bool) { a, ok := archs[goarch]; return a.usr, ok }

// designatorOf names the role of a partition type on arch.
func designatorOf(t GUID, a archTypes) (Designator, bool) {
	switch t {
	case a.root:
		return Root, true
	case a.rootVerity:
		return RootVerity, true
	case a.rootSig:
		return RootVeritySig, true
	case a.usr:
		return Usr, true
	case a.usrVerity:
		return UsrVerity, true
	case a.usrSig:
		return UsrVeritySig, true
	case TypeESP:
		return ESP, true
	case TypeXBootLdr:
		return XBootLdr, true
	case TypeSwap:
		return Swap, true
	case TypeHome:
		return Home, true
	case TypeSrv:
		return Srv, true
	case TypeVar:
		return Var, true
	case TypeTmp:
		return Tmp, true
	}
	return -1, false
}

// Partition is one partition the image's user will use.
type Partition struct {
	Designator Designator
	Number     int   // in the partition table; 0 for a bare file system
	Offset     int64 // bytes from the start of the image
	Size       int64
	FSType     string // "" for verity, signature and swap partitions
	ReadWrite  bool   // neither the read-only attribute nor a read-only file system
	GrowFS     bool
	Flags      uint64
	Label      string
}

// Image is a dissected image.
type Image struct {
	GPT        bool
	SectorSize int
	Partitions map[Designator]*Partition
	Ignored    []Designator // found but left unused by the policy
	// Verity is the dm-verity set-up of the root or /usr partition, nil
	// for none.
	Verity *Verity
	// VerityUnused says the image has a verity partition but no root hash
	// is known, so it is used without integrity checking (nspawn says so).
	VerityUnused bool
}

// MountPoint is where a data partition goes in the container, "" for the
// ones a container does not mount (ESP, XBOOTLDR, swap, verity).
func MountPoint(d Designator) string {
	switch d {
	case Root:
		return "/"
	case Usr:
		return "/usr"
	case Home:
		return "/home"
	case Srv:
		return "/srv"
	case Var:
		return "/var"
	case Tmp:
		return "/var/tmp"
	}
	return ""
}

// HasRoot says the image has a root partition; without one it has a /usr
// partition, and the container's root is an empty tmpfs.
func (m *Image) HasRoot() bool { return m.Partitions[Root] != nil }

// Mounts are the partitions to mount, root first, in mount order.
func (m *Image) Mounts() []*Partition {
	var out []*Partition
	for _, d := range []Designator{Root, Usr, Home, Srv, Var, Tmp} {
		if p := m.Partitions[d]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Options steer Dissect.
type Options struct {
	Arch   string  // a Go GOARCH; "" for this program's
	Policy *Policy // nil: ContainerPolicy
	// Verity is what the user and the files beside the image say about
	// dm-verity (LoadVerity); nil for nothing.
	Verity *VeritySettings
}

// Errors a caller may want to tell apart.
var (
	ErrNotAnImage = errors.New("neither a GUID partition table nor a file system netspawn recognises (ext2/3/4, btrfs, xfs, squashfs, erofs)")
	ErrNoRoot     = errors.New("no root partition")
)

// Dissect finds the partitions of an image of size bytes, as nspawn's
// dissection does for a container: the root (the architecture's root
// type, else a single generic Linux partition), /usr, /home, /srv, /var,
// /var/tmp; partitions marked no-auto are skipped; of several root or
// /usr partitions the one with the highest version in its label wins.
// An image with a /usr partition needs no root partition (HasRoot).
func Dissect(r io.ReaderAt, size int64, opt Options) (*Image, error) {
	pol := opt.Policy
	if pol == nil {
		pol = ContainerPolicy
	}
	goarch := opt.Arch
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	arch := archs[goarch] // the zero value matches no type: generic partitions only
	vs := opt.Verity
	if vs == nil {
		vs = &VeritySettings{Designator: Root}
	}
	entries, ss, err := ReadGPT(r, size)
	if errors.Is(err, ErrNoGPT) {
		return dissectBare(r, size, pol, vs)
	}
	if err != nil {
		return nil, err
	}
	if vs.DataPath != "" && vs.DataFrom == "--verity-data=" {
		return nil, fmt.Errorf("--verity-data= is for an image without a partition table (a bare file system); this image has a GUID partition table: its hash tree belongs in a %s partition", RootVerity)
	}
	// With a root hash, the data partition and its verity partition are
	// the ones whose UUIDs the root hash gives.
	var dataUUID, verityUUID GUID
	vd, _ := verityPartition(vs.Designator)
	if vs.RootHash != nil {
		if dataUUID, verityUUID, err = UUIDsOfRootHash(vs.RootHash); err != nil {
			return nil, fmt.Errorf("root hash from %s: %w", vs.RootHashFrom, err)
		}
	}
	m := &Image{GPT: true, SectorSize: ss, Partitions: map[Designator]*Partition{}}
	ignored := map[Designator]bool{}
	var generic []Entry
	for _, e := range entries {
		d, ok := designatorOf(e.Type, arch)
		if !ok {
			if e.Type == TypeLinuxGeneric && e.Flags&FlagNoAuto == 0 {
				generic = append(generic, e)
			}
			continue
		}
		if e.Flags&FlagNoAuto != 0 && d != ESP {
			continue
		}
		if vs.RootHash != nil && ((d == vs.Designator && e.UUID != dataUUID) || (d == vd && e.UUID != verityUUID)) {
			continue
		}
		use, err := pol.mayUse(d)
		if err != nil {
			return nil, err
		}
		if !use {
			ignored[d] = true
			continue
		}
		if old := m.Partitions[d]; old != nil {
			if (d != Root && d != Usr) || versionCompare(e.Label, old.Label) <= 0 {
				continue
			}
		}
		m.Partitions[d] = newPartition(d, e)
	}
	if vs.RootHash != nil && m.Partitions[vs.Designator] == nil && !ignored[vs.Designator] {
		return nil, fmt.Errorf("the root hash from %s is for the %s partition, but the image has no %s partition whose UUID is %s (the root hash's first 128 bits)",
			vs.RootHashFrom, vs.Designator, vs.Designator, dataUUID)
	}
	if m.Partitions[Root] == nil && !ignored[Root] {
		switch {
		case len(generic) > 1:
			return nil, fmt.Errorf("%w for %s and %d generic Linux partitions: cannot tell which is the root", ErrNoRoot, archName(arch, goarch), len(generic))
		case len(generic) == 1:
			use, err := pol.mayUse(Root)
			if err != nil {
				return nil, err
			}
			if use {
				m.Partitions[Root] = newPartition(Root, generic[0])
			} else {
				ignored[Root] = true
			}
		}
	}
	// A /usr partition alone is an image too: as nspawn (252, which
	// dissects with DISSECT_IMAGE_USR_NO_ROOT), the container's root is
	// then an empty tmpfs with the /usr partition mounted on /usr.
	if m.Partitions[Root] == nil && m.Partitions[Usr] == nil {
		if ignored[Root] {
			return nil, fmt.Errorf("%w: the image policy %q leaves the root partition unused", ErrNoRoot, pol)
		}
		return nil, fmt.Errorf("%w: the GUID partition table has no partition of type %s (root, %s), none of type %s (/usr) and no single generic Linux partition",
			ErrNoRoot, rootTypeString(arch), archName(arch, goarch), typeString(arch.usr))
	}
	if m.Partitions[RootVerity] != nil && m.Partitions[UsrVerity] != nil {
		return nil, errors.New("the image has verity partitions for both root and /usr: only one is supported")
	}
	if m.Partitions[RootVerity] != nil && m.Partitions[Usr] != nil {
		return nil, errors.New("the image has a verity-protected root and a separate /usr partition: not supported")
	}
	if m.Verity, err = gptVerity(r, m, vs, verityUUID, ignored); err != nil {
		return nil, err
	}
	for d, p := range m.Partitions {
		if p.FSType == "" && MountPoint(d) != "" {
			p.FSType = ProbeFS(r, p.Offset, p.Size)
			if p.FSType == "" {
				return nil, fmt.Errorf("partition %d (%s) holds no file system netspawn recognises", p.Number, d)
			}
		}
		if err := checkFound(pol, d, p, m); err != nil {
			return nil, err
		}
	}
	for d := range ignored {
		if m.Partitions[d] == nil {
			m.Ignored = append(m.Ignored, d)
		}
	}
	sort.Slice(m.Ignored, func(i, j int) bool { return m.Ignored[i] < m.Ignored[j] })
	if err := checkRequired(pol, m, ignored); err != nil {
		return nil, err
	}
	return m, nil
}

func archName(a archTypes, goarch string) string {
	if a.name != "" {
		return a.name
	}
	return goarch
}

func rootTypeString(a archTypes) string {
	if a.root == (GUID{}) {
		return "(none known for this architecture)"
	}
	return a.root.String()
}

func typeString(g GUID) string {
	if g == (GUID{}) {
		return "(none known for this architecture)"
	}
	return g.String()
}

func newPartition(d Designator, e Entry) *Partition {
	return &Partition{
		Designator: d, Number: e.Number, Offset: e.Offset, Size: e.Size,
		ReadWrite: e.Flags&FlagReadOnly == 0, GrowFS: e.Flags&FlagGrowFS != 0,
		Flags: e.Flags, Label: e.Label,
	}
}

// checkFound checks one used partition against the policy: its
// protection and its GPT attributes.
func checkFound(pol *Policy, d Designator, p *Partition, m *Image) error {
	if ReadOnlyFS(p.FSType) {
		p.ReadWrite = false
	}
	if !p.ReadWrite {
		p.GrowFS = false
	}
	var found PolicyFlags
	switch {
	case p.FSType == "crypto_LUKS":
		found = PolicyEncrypted
	case m.Verity != nil && m.Verity.Data == d:
		found = PolicyVerity
		if m.Verity.Signed {
			found |= PolicySigned
		}
	default:
		found = PolicyUnprotected
	}
	if err := pol.checkProtection(d, found); err != nil {
		return err
	}
	return pol.checkGPTFlags(d, p.Flags)
}

// checkRequired refuses an image lacking a partition the policy does
// not allow to be absent.
func checkRequired(pol *Policy, m *Image, ignored map[Designator]bool) error {
	for d := Designator(0); d < numDesignators; d++ {
		if m.Partitions[d] != nil || ignored[d] {
			continue
		}
		if pol.Flags(d)&PolicyAbsent == 0 {
			return &PolicyError{d, pol.String(), "is missing, but the policy does not allow it to be absent"}
		}
	}
	return nil
}

// dissectBare takes a whole image holding one file system as the root.
func dissectBare(r io.ReaderAt, size int64, pol *Policy, vs *VeritySettings) (*Image, error) {
	fs := ProbeFS(r, 0, size)
	switch fs {
	case "":
		return nil, ErrNotAnImage
	case "swap", "vfat":
		return nil, fmt.Errorf("the image is a bare %s file system, not one a container's root can be on", fs)
	}
	use, err := pol.mayUse(Root)
	if err != nil {
		return nil, err
	}
	if !use {
		return nil, fmt.Errorf("%w: the image policy %q leaves the root file system unused", ErrNoRoot, pol)
	}
	p := &Partition{Designator: Root, Offset: 0, Size: size, FSType: fs, ReadWrite: true}
	m := &Image{Partitions: map[Designator]*Partition{Root: p}}
	if m.Verity, err = bareVerity(vs); err != nil {
		return nil, err
	}
	if m.Verity != nil {
		p.ReadWrite = false
	}
	if err := checkFound(pol, Root, p, m); err != nil {
		return nil, err
	}
	// An image without partition table has no verity partitions: with a
	// hash tree beside it they count as present.
	var present map[Designator]bool
	if m.Verity != nil {
		present = map[Designator]bool{RootVerity: true, RootVeritySig: m.Verity.Signed}
	}
	if err := checkRequired(pol, m, present); err != nil {
		return nil, err
	}
	return m, nil
}

// versionCompare orders labels like "fooos_1.10" after "fooos_1.9": runs
// of digits compare as numbers, the rest byte by byte.
func versionCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return cmpInt(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmpInt(int(a[0]), int(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return cmpInt(len(a), len(b))
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
