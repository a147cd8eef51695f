package config

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Credential is one --set-credential= or --load-credential=: a file named ID
// in the payload's $CREDENTIALS_DIRECTORY holding Data.
type Credential struct {
	ID   string
	Data []byte
}

// CredentialsDir is where nspawn puts credentials inside the container.
const CredentialsDir = "/run/host/credentials"

// CredentialNameValid is systemd's credential_name_valid: a valid file name
// that is also a valid file descriptor name (printable ASCII, no ':').
func CredentialNameValid(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == ':' || c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Cunescape undoes C-style escapes as systemd's cunescape() with
// UNESCAPE_ACCEPT_NUL: \a \b \f \n \r \t \v \\ \" \' \s, \xNN, \NNN (octal),
// \uNNNN and \UNNNNNNNN (encoded as UTF-8). Other escapes, and a trailing
// backslash, are errors.
func Cunescape(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("trailing backslash")
		}
		rest := s[i+1:]
		simple := map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
			'\\': '\\', '"': '"', '\'': '\'', 's': ' '}
		if c, ok := simple[rest[0]]; ok {
			out = append(out, c)
			i++
			continue
		}
		switch c := rest[0]; {
		case c == 'x':
			if len(rest) < 3 || unhex(rest[1]) < 0 || unhex(rest[2]) < 0 {
				return nil, fmt.Errorf("invalid escape \\%s", clip(rest, 3))
			}
			out = append(out, byte(unhex(rest[1])<<4|unhex(rest[2])))
			i += 3
		case c == 'u' || c == 'U':
			n := 4
			if c == 'U' {
				n = 8
			}
			if len(rest) < n+1 {
				return nil, fmt.Errorf("invalid escape \\%s", rest)
			}
			var r rune
			for _, h := range []byte(rest[1 : n+1]) {
				if unhex(h) < 0 {
					return nil, fmt.Errorf("invalid escape \\%s", rest[:n+1])
				}
				r = r<<4 | rune(unhex(h))
			}
			if c == 'U' && !utf8.ValidRune(r) {
				return nil, fmt.Errorf("invalid code point in \\%s", rest[:n+1])
			}
			out = utf8.AppendRune(out, r)
			i += n + 1
		case c >= '0' && c <= '7':
			if len(rest) < 3 || !isOct(rest[1]) || !isOct(rest[2]) {
				return nil, fmt.Errorf("invalid escape \\%s", clip(rest, 3))
			}
			m := int(rest[0]-'0')<<6 | int(rest[1]-'0')<<3 | int(rest[2]-'0')
			if m > 255 {
				return nil, fmt.Errorf("invalid escape \\%s: above 255", rest[:3])
			}
			out = append(out, byte(m))
			i += 3
		default:
			return nil, fmt.Errorf("invalid escape \\%c", c)
		}
	}
	return out, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// splitCredential splits ID:REST and checks the ID against the ones
// already given.
func splitCredential(flag, v string, have []Credential) (string, string, error) {
	id, rest, ok := strings.Cut(v, ":")
	if !ok || id == "" {
		return "", "", fmt.Errorf("missing value for --%s=: %s (use ID:%s)", flag, v, map[bool]string{true: "VALUE", false: "PATH"}[flag == "set-credential"])
	}
	if !CredentialNameValid(id) {
		return "", "", fmt.Errorf("credential name is not valid: %q (a file name of printable ASCII, without '/' or ':')", id)
	}
	for _, c := range have {
		if c.ID == id {
			return "", "", fmt.Errorf("duplicate credential '%s', refusing", id)
		}
	}
	return id, rest, nil
}

// ParseSetCredential parses --set-credential=ID:VALUE (VALUE C-unescaped).
func ParseSetCredential(v string, have []Credential) (Credential, error) {
	id, val, err := splitCredential("set-credential", v, have)
	if err != nil {
		return Credential{}, err
	}
	data, err := Cunescape(val)
	if err != nil {
		return Credential{}, fmt.Errorf("failed to unescape credential data %q: %v", val, err)
	}
	return Credential{ID: id, Data: data}, nil
}

// maxCredentialSize bounds a loaded credential (systemd's CREDENTIAL_SIZE_MAX).
const maxCredentialSize = 1024 * 1024

// ParseLoadCredential parses --load-credential=ID:PATH and reads PATH: an
// absolute path is a regular file or an AF_UNIX stream socket (connected and
// read to its end); a relative one names a credential netspawn itself got
// in $CREDENTIALS_DIRECTORY.
func ParseLoadCredential(v string, have []Credential, getenv func(string) string) (Credential, error) {
	id, p, err := splitCredential("load-credential", v, have)
	if err != nil {
		return Credential{}, err
	}
	if p == "" {
		return Credential{}, fmt.Errorf("missing path for --load-credential=%s", v)
	}
	if !filepath.IsAbs(p) {
		dir := getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return Credential{}, fmt.Errorf("credential not available (no credentials passed at all, $CREDENTIALS_DIRECTORY is unset): %s", p)
		}
		p = filepath.Join(dir, p)
	}
	data, err := readCredential(p)
	if err != nil {
		return Credential{}, fmt.Errorf("failed to read credential '%s': %v", p, err)
	}
	return Credential{ID: id, Data: data}, nil
}

func readCredential(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case st.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	case st.Mode()&os.ModeSocket != 0:
		conn, err := net.Dial("unix", p)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		_ = conn.(*net.UnixConn).CloseWrite()
		r = conn
	default:
		return nil, fmt.Errorf("not a regular file or AF_UNIX socket")
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCredentialSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCredentialSize {
		return nil, fmt.Errorf("larger than %d bytes", maxCredentialSize)
	}
	return data, nil
}
