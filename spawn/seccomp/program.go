package seccomp

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Program is a compiled filter as it travels between processes: as text
// (and so in JSON) it is one base64 string of the kernel's 8-byte
// instructions (code, jt, jf, k; little-endian), not an object per
// instruction.
// The default filter has about 570 instructions; as objects they took
// 22 KB of JSON and 1.7 ms to encode and decode on every container start.
type Program []unix.SockFilter

const insnSize = 8

// MarshalText encodes the program as base64.
func (p Program) MarshalText() ([]byte, error) {
	raw := make([]byte, len(p)*insnSize)
	for i, in := range p {
		b := raw[i*insnSize:]
		binary.LittleEndian.PutUint16(b[0:], in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[4:], in.K)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	return out, nil
}

// UnmarshalText decodes what MarshalText made.
func (p *Program) UnmarshalText(text []byte) error {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(raw, text)
	raw = raw[:n]
	if err != nil {
		return fmt.Errorf("seccomp program: %w", err)
	}
	if len(raw)%insnSize != 0 {
		return fmt.Errorf("seccomp program: %d bytes is not a whole number of %d-byte instructions", len(raw), insnSize)
	}
	if n := len(raw) / insnSize; n > maxInsns {
		return fmt.Errorf("seccomp program: %d instructions, more than the kernel's limit of %d", n, maxInsns)
	}
	out := make(Program, len(raw)/insnSize)
	for i := range out {
		b := raw[i*insnSize:]
		out[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(b[0:]), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	*p = out
	return nil
}
