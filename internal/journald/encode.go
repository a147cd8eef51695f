// Package journald is a log/slog handler that writes to systemd's
// journal over its native protocol: one datagram per record on
// /run/systemd/journal/socket, with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
// CODE_FILE/CODE_LINE/CODE_FUNC and every slog attribute as a field of
// its own (upper case, groups joined by '_'). The encoding (encode.go) is
// pure; the handler (handler.go) sends, and writes a record to its
// fallback handler (stderr) when the journal cannot take it.
//
// UnderJournal tells whether the process's stderr is connected to the
// journal (systemd sets $JOURNAL_STREAM to its device and inode), which
// is when a daemon should log this way.
package journald

import (
	"encoding/binary"
	"log/slog"
	"strings"
)

// AppendField appends one field in the native protocol's form:
// "KEY=value\n", or, when value holds a newline (or anything else that
// the text form cannot carry), the binary-safe form: "KEY\n", the length
// of value as a 64-bit little-endian integer, value, "\n".
func AppendField(dst []byte, key, value string) []byte {
	if strings.IndexByte(value, '\n') < 0 {
		dst = append(dst, key...)
		dst = append(dst, '=')
		dst = append(dst, value...)
		return append(dst, '\n')
	}
	dst = append(dst, key...)
	dst = append(dst, '\n')
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(value)))
	dst = append(dst, value...)
	return append(dst, '\n')
}

// maxFieldName is the longest field name journald keeps.
const maxFieldName = 64

// reserved are the fields the handler writes itself: attributes of the
// same names get an "ATTR_" prefix rather than a second value.
var reserved = map[string]bool{"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true}

// FieldName turns an attribute key (with its groups' prefix, joined by
// '_') into a journal field name: upper-case letters, digits and '_',
// not starting with '_' (those are the journal's trusted fields) nor a
// digit, at most 64 bytes, never one of the handler's own fields.
func FieldName(key string) string {
	b := make([]byte, 0, len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			c = '_'
		}
		b = append(b, c)
	}
	name := strings.TrimLeft(string(b), "_")
	switch {
	case name == "":
		name = "ATTR"
	case name[0] >= '0' && name[0] <= '9', reserved[name]:
		name = "ATTR_" + name
	}
	if len(name) > maxFieldName {
		name = name[:maxFieldName]
	}
	return name
}

// Priority maps a slog level to a syslog priority: debug 7, info 6,
// between info and warn (e.g. slog.LevelInfo+2) notice 5, warn 4,
// error 3.
func Priority(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 7
	case l < slog.LevelInfo+2:
		return 6
	case l < slog.LevelWarn:
		return 5
	case l < slog.LevelError:
		return 4
	}
	return 3
}

// appendAttr appends a (resolved) attribute, groups flattened into the
// field name; empty attributes and groups are left out, as slog's own
// handlers do.
func appendAttr(dst []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "_"
		}
		for _, g := range a.Value.Group() {
			dst = appendAttr(dst, p, g)
		}
		return dst
	}
	return AppendField(dst, FieldName(prefix+a.Key), a.Value.String())
}
