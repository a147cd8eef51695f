package seccomp

import "golang.org/x/sys/unix"

// PrecompiledSource is precompiledSource, for the external test that knows
// the default capability sets (spawn/config imports this package).
var PrecompiledSource = precompiledSource

// CompileFresh compiles f without the precompiled programs and the cache.
func CompileFresh(f *Filter, arch string) ([]unix.SockFilter, error) {
	return f.compile(archABIs[normArch(arch)], f.Errno)
}
