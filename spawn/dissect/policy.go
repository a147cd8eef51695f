package dissect

import (
	"fmt"
	"sort"
	"strings"
)

// Designator is a partition's role, as the Discoverable Partitions
// Specification and systemd's image policies name them.
type Designator int

// The designators, in systemd's order.
const (
	Root Designator = iota
	Usr
	Home
	Srv
	ESP
	XBootLdr
	Swap
	RootVerity
	UsrVerity
	RootVeritySig
	UsrVeritySig
	Tmp
	Var
	numDesignators
)

var designatorNames = [numDesignators]string{"root", "usr", "home", "srv", "esp", "xbootldr", "swap",
	"root-verity", "usr-verity", "root-verity-sig", "usr-verity-sig", "tmp", "var"}

func (d Designator) String() string {
	if d < 0 || d >= numDesignators {
		return fmt.Sprintf("designator(%d)", int(d))
	}
	return designatorNames[d]
}

// ParseDesignator reads a designator's name.
func ParseDesignator(s string) (Designator, bool) {
	for i, n := range designatorNames {
		if n == s {
			return Designator(i), true
		}
	}
	return -1, false
}

// verityData is the data partition a verity or signature partition
// protects; verityOf the verity partition of a data partition.
func (d Designator) verityData() (Designator, bool) {
	switch d {
	case RootVerity:
		return Root, true
	case UsrVerity:
		return Usr, true
	}
	return -1, false
}

func (d Designator) veritySigData() (Designator, bool) {
	switch d {
	case RootVeritySig:
		return Root, true
	case UsrVeritySig:
		return Usr, true
	}
	return -1, false
}

func (d Designator) hasVerity() bool { return d == Root || d == Usr }

// PolicyFlags say how a partition may be used (systemd's
// PartitionPolicyFlags, the same bits).
type PolicyFlags uint16

// The policy flags.
const (
	PolicyVerity      PolicyFlags = 1 << 0
	PolicySigned      PolicyFlags = 1 << 1
	PolicyEncrypted   PolicyFlags = 1 << 2
	PolicyUnprotected PolicyFlags = 1 << 3
	PolicyUnused      PolicyFlags = 1 << 4
	PolicyAbsent      PolicyFlags = 1 << 5
	PolicyOpen                    = PolicyVerity | PolicySigned | PolicyEncrypted | PolicyUnprotected | PolicyUnused | PolicyAbsent
	PolicyIgnore                  = PolicyUnused | PolicyAbsent
	policyUseMask                 = PolicyOpen

	PolicyReadOnlyOff  PolicyFlags = 1 << 6
	PolicyReadOnlyOn   PolicyFlags = 1 << 7
	policyReadOnlyMask             = PolicyReadOnlyOff | PolicyReadOnlyOn
	PolicyGrowFSOff    PolicyFlags = 1 << 8
	PolicyGrowFSOn     PolicyFlags = 1 << 9
	policyGrowFSMask               = PolicyGrowFSOff | PolicyGrowFSOn
	policyPFlagsMask               = policyReadOnlyMask | policyGrowFSMask
)

var flagNames = []struct {
	name string
	f    PolicyFlags
}{
	{"verity", PolicyVerity}, {"signed", PolicySigned}, {"encrypted", PolicyEncrypted},
	{"unprotected", PolicyUnprotected}, {"unused", PolicyUnused}, {"absent", PolicyAbsent},
	{"read-only-off", PolicyReadOnlyOff}, {"read-only-on", PolicyReadOnlyOn},
	{"growfs-off", PolicyGrowFSOff}, {"growfs-on", PolicyGrowFSOn},
}

// String spells the flags as a policy does, shortened to "open" and
// "ignore" where it can.
func (f PolicyFlags) String() string {
	var l []string
	switch f & policyUseMask {
	case PolicyOpen:
		l = append(l, "open")
	case PolicyIgnore:
		l = append(l, "ignore")
	default:
		for _, n := range flagNames[:6] {
			if f&n.f != 0 {
				l = append(l, n.name)
			}
		}
	}
	for _, m := range []PolicyFlags{policyReadOnlyMask, policyGrowFSMask} {
		if f&m == m {
			continue // both: don't care
		}
		for _, n := range flagNames[6:] {
			if f&n.f&m != 0 {
				l = append(l, n.name)
			}
		}
	}
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, "+")
}

// ParsePolicyFlags reads "verity+signed+read-only-on"; "" and "-" are no
// flags (which a policy reads as "anything").
func ParsePolicyFlags(s string) (PolicyFlags, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "-" {
		return 0, nil
	}
	var f PolicyFlags
	for _, w := range strings.Split(s, "+") {
		w = strings.TrimSpace(w)
		switch w {
		case "open":
			f |= PolicyOpen
			continue
		case "ignore":
			f |= PolicyIgnore
			continue
		}
		ok := false
		for _, n := range flagNames {
			if n.name == w {
				f |= n.f
				ok = true
			}
		}
		if !ok {
			return 0, fmt.Errorf("unknown partition policy flag %q (known: verity, signed, encrypted, unprotected, unused, absent, open, ignore, read-only-on, read-only-off, growfs-on, growfs-off)", w)
		}
	}
	return f, nil
}

// extend fills in what a flags field leaves unsaid: no use flag means
// any use, no read-only or growfs flag means either.
func (f PolicyFlags) extend() PolicyFlags {
	if f&policyUseMask == 0 {
		f |= PolicyOpen
	}
	if f&policyReadOnlyMask == 0 {
		f |= policyReadOnlyMask
	}
	if f&policyGrowFSMask == 0 {
		f |= policyGrowFSMask
	}
	return f
}

func normalize(d Designator, f PolicyFlags) PolicyFlags {
	f = f.extend()
	if _, ok := d.verityData(); ok {
		f &^= PolicyVerity | PolicySigned | PolicyEncrypted
	} else if _, ok := d.veritySigData(); ok {
		f &^= PolicyVerity | PolicySigned | PolicyEncrypted
	}
	if !d.hasVerity() {
		f &^= PolicyVerity | PolicySigned
	}
	if f&policyUseMask == PolicyAbsent {
		f &^= policyPFlagsMask
	}
	return f
}

// Policy is an image policy (--image-policy=): flags per designator and
// a default for the others.
type Policy struct {
	Default PolicyFlags
	Parts   map[Designator]PolicyFlags
	text    string
}

// ContainerPolicy is what systemd-nspawn uses without --image-policy=:
// every partition but swap, in any protection.
var ContainerPolicy = &Policy{
	Default: PolicyIgnore,
	Parts: map[Designator]PolicyFlags{
		Root:     PolicyVerity | PolicySigned | PolicyEncrypted | PolicyUnprotected | PolicyAbsent,
		Usr:      PolicyVerity | PolicySigned | PolicyEncrypted | PolicyUnprotected | PolicyAbsent,
		Home:     PolicyEncrypted | PolicyUnprotected | PolicyAbsent,
		Srv:      PolicyEncrypted | PolicyUnprotected | PolicyAbsent,
		ESP:      PolicyUnprotected | PolicyAbsent,
		XBootLdr: PolicyUnprotected | PolicyAbsent,
		Tmp:      PolicyEncrypted | PolicyUnprotected | PolicyAbsent,
		Var:      PolicyEncrypted | PolicyUnprotected | PolicyAbsent,
	},
}

// ParsePolicy reads systemd's image policy language:
// "root=verity+signed:usr=encrypted+unprotected:=absent", or the
// symbols "*" (allow everything), "-" or "" (ignore everything), "~"
// (nothing may exist).
func ParsePolicy(s string) (*Policy, error) {
	p := &Policy{Parts: map[Designator]PolicyFlags{}, text: s}
	switch strings.TrimSpace(s) {
	case "", "-":
		p.Default = PolicyIgnore
		return p, nil
	case "*":
		p.Default = PolicyOpen
		return p, nil
	case "~":
		p.Default = PolicyAbsent
		return p, nil
	}
	p.Default = PolicyIgnore
	haveDefault := false
	elems := strings.Split(s, ":")
	if elems[len(elems)-1] == "" {
		elems = elems[:len(elems)-1] // a trailing separator
	}
	for _, e := range elems {
		name, flags, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("image policy %q: %q lacks '=': write PARTITION=FLAGS (e.g. root=verity+unprotected)", s, e)
		}
		f, err := ParsePolicyFlags(flags)
		if err != nil {
			return nil, fmt.Errorf("image policy %q: %w", s, err)
		}
		name = strings.TrimSpace(name)
		if name == "" {
			if haveDefault {
				return nil, fmt.Errorf("image policy %q: the default (=FLAGS) is given more than once", s)
			}
			haveDefault = true
			p.Default = f
			continue
		}
		d, ok := ParseDesignator(name)
		if !ok {
			return nil, fmt.Errorf("image policy %q: unknown partition designator %q (known: %s)", s, name, strings.Join(designatorNames[:], ", "))
		}
		if _, dup := p.Parts[d]; dup {
			return nil, fmt.Errorf("image policy %q: partition designator %s is given more than once", s, name)
		}
		p.Parts[d] = f
	}
	return p, nil
}

// String is the policy as it was written, or its canonical spelling.
func (p *Policy) String() string {
	if p.text != "" {
		return p.text
	}
	var l []string
	var ds []int
	for d := range p.Parts {
		ds = append(ds, int(d))
	}
	sort.Ints(ds)
	for _, d := range ds {
		l = append(l, Designator(d).String()+"="+p.Parts[Designator(d)].String())
	}
	l = append(l, "="+p.Default.String())
	return strings.Join(l, ":")
}

// get is image_policy_get: the flags for d, derived for verity
// partitions from their data partition's, false when nothing applies.
func (p *Policy) get(d Designator) (PolicyFlags, bool) {
	if f, ok := p.Parts[d]; ok {
		return normalize(d, f), true
	}
	if data, ok := d.verityData(); ok {
		df := p.Flags(data)
		if df&(PolicySigned|PolicyVerity) == 0 {
			return 0, false
		}
		return normalize(d, PolicyUnprotected|df&(PolicyUnused|PolicyAbsent)|df&policyPFlagsMask), true
	}
	if data, ok := d.veritySigData(); ok {
		df := p.Flags(data)
		if df&PolicySigned == 0 {
			return 0, false
		}
		return normalize(d, PolicyUnprotected|df&(PolicyUnused|PolicyAbsent)|df&policyPFlagsMask), true
	}
	return 0, false
}

// Flags is what the policy allows for d: its own entry or the default,
// normalized.
func (p *Policy) Flags(d Designator) PolicyFlags {
	if f, ok := p.get(d); ok {
		return f
	}
	return normalize(d, p.Default)
}

// PolicyError is a refusal by the image policy.
type PolicyError struct {
	Designator Designator
	Policy     string
	Reason     string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("partition %s %s (image policy %q), refusing", e.Designator, e.Reason, e.Policy)
}

// mayUse says whether a partition found for d is used (true), ignored
// (false), or refused.
func (p *Policy) mayUse(d Designator) (bool, error) {
	f := p.Flags(d)
	if f&policyUseMask == PolicyAbsent {
		return false, &PolicyError{d, p.String(), "exists, but the policy says it must be absent"}
	}
	if f&policyUseMask&^PolicyAbsent == PolicyUnused {
		return false, nil
	}
	return true, nil
}

// checkProtection refuses a partition found with protection found (a
// mask of what it could be used as) the policy allows none of.
func (p *Policy) checkProtection(d Designator, found PolicyFlags) error {
	f := p.Flags(d)
	if found&f == 0 {
		return &PolicyError{d, p.String(), fmt.Sprintf("was found %s but the policy requires %s", found.String(), (f & policyUseMask).String())}
	}
	return nil
}

// checkGPTFlags refuses a partition whose read-only or growfs attribute
// the policy wants the other way.
func (p *Policy) checkGPTFlags(d Designator, gpt uint64) error {
	f := p.Flags(d)
	ro := gpt&FlagReadOnly != 0
	if want := f & policyReadOnlyMask; (ro && want == PolicyReadOnlyOff) || (!ro && want == PolicyReadOnlyOn) {
		return &PolicyError{d, p.String(), fmt.Sprintf("has the read-only flag %s, the policy wants it %s", onOff(ro), onOff(!ro))}
	}
	g := gpt&FlagGrowFS != 0
	if want := f & policyGrowFSMask; (g && want == PolicyGrowFSOff) || (!g && want == PolicyGrowFSOn) {
		return &PolicyError{d, p.String(), fmt.Sprintf("has the growfs flag %s, the policy wants it %s", onOff(g), onOff(!g))}
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
