package config

import (
	"fmt"

	"github.com/netspawn/netspawn/spawn/seccomp"
)

// seccomp parses linux.seccomp as systemd-nspawn 252 does: a whole filter
// in libseccomp's terms, which replaces the default one. Beyond nspawn,
// errnoRet and defaultErrnoRet (later versions of the OCI specification)
// set the errno of SCMP_ACT_ERRNO, which is otherwise EPERM; unlike
// nspawn, a syscall name netspawn does not know is an error, not skipped.
func (b *OCIBundle) seccomp(field string, v any) error {
	m, err := ociFields(field, v, "defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls")
	if err != nil {
		return err
	}
	p := &seccomp.Profile{}
	if p.DefaultAction, err = ociSeccompAction(m, field, "defaultAction", "defaultErrnoRet"); err != nil {
		return err
	}
	if x, ok := m["architectures"]; ok {
		names, err := ociStrings(field+".architectures", x)
		if err != nil {
			return err
		}
		for i, n := range names {
			a, err := seccomp.ArchFromName(n)
			if err != nil {
				return ociErr(fmt.Sprintf("%s.architectures[%d]", field, i), "%v", err)
			}
			p.Arches = append(p.Arches, a)
		}
	}
	if x, ok := m["flags"]; ok {
		flags, err := ociStrings(field+".flags", x)
		if err != nil {
			return err
		}
		if len(flags) > 0 {
			return ociErr(field+".flags", "seccomp filter flags (%s) are not supported by netspawn (nor by systemd-nspawn): remove them", flags[0])
		}
	}
	err = ociIf(m, field, "syscalls", func(f string, x any) error {
		return ociObjects(f, x, []string{"names", "action", "errnoRet", "args"}, func(f string, m map[string]any) error {
			var r seccomp.Rule
			if r.Names, err = ociNeed(m, f, "names", ociStrings); err != nil {
				return err
			}
			if len(r.Names) == 0 {
				return ociErr(f+".names", "the list of system call names is empty")
			}
			for i, n := range r.Names {
				if !seccomp.KnownName(n) {
					return ociErr(fmt.Sprintf("%s.names[%d]", f, i), "unknown system call %q: netspawn knows no system call of that name on any architecture", n)
				}
			}
			if r.Action, err = ociSeccompAction(m, f, "action", "errnoRet"); err != nil {
				return err
			}
			var seen [seccomp.MaxArgs]bool
			err := ociIf(m, f, "args", func(f string, x any) error {
				return ociObjects(f, x, []string{"index", "value", "valueTwo", "op"}, func(f string, m map[string]any) error {
					var c seccomp.ArgCmp
					idx, err := ociNeed(m, f, "index", ociUnsigned)
					if err != nil {
						return err
					}
					if idx >= seccomp.MaxArgs {
						return ociErr(f+".index", "%d is out of range 0..%d", idx, seccomp.MaxArgs-1)
					}
					if seen[idx] {
						return ociErr(f+".index", "argument %d is compared twice in one rule: as libseccomp, netspawn takes one comparison per argument (write two rules)", idx)
					}
					seen[idx] = true
					c.Index = uint8(idx)
					if c.Value, err = ociNeed(m, f, "value", ociUnsigned); err != nil {
						return err
					}
					// nspawn takes a missing valueTwo as 0, also for
					// SCMP_CMP_MASKED_EQ (which buildah writes so).
					if err := ociMay(m, f, "valueTwo", ociUnsigned, &c.ValueTwo); err != nil {
						return err
					}
					op, err := ociNeed(m, f, "op", ociString)
					if err != nil {
						return err
					}
					if c.Op, err = seccomp.CmpFromName(op); err != nil {
						return ociErr(f+".op", "%v", err)
					}
					r.Args = append(r.Args, c)
					return nil
				})
			})
			if err != nil {
				return err
			}
			p.Rules = append(p.Rules, r)
			return nil
		})
	})
	if err != nil {
		return err
	}
	if err := p.Check(); err != nil {
		return ociErr(field, "%v", err)
	}
	b.Seccomp = p
	return nil
}

// ociSeccompAction reads the action m[key], with the errno of
// SCMP_ACT_ERRNO in m[errnoKey].
func ociSeccompAction(m map[string]any, field, key, errnoKey string) (seccomp.Action, error) {
	name, err := ociNeed(m, field, key, ociString)
	if err != nil {
		return 0, err
	}
	a, err := seccomp.ActionFromName(name)
	if err != nil {
		return 0, ociErr(field+"."+key, "%v", err)
	}
	if x, ok := m[errnoKey]; ok {
		e, err := ociUnsigned(field+"."+errnoKey, x)
		if err != nil {
			return 0, err
		}
		if !a.IsErrno() {
			return 0, ociErr(field+"."+errnoKey, "only SCMP_ACT_ERRNO takes an errno, not %s", name)
		}
		if e > seccomp.MaxErrno {
			return 0, ociErr(field+"."+errnoKey, "%d is out of range 0..%d", e, seccomp.MaxErrno)
		}
		a = seccomp.ActErrno(uint32(e))
	}
	return a, nil
}
