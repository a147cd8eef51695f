package images

import (
	"strconv"
	"strings"
)

// ParseOSRelease reads os-release(5) lines (KEY=VALUE, optionally quoted).
func ParseOSRelease(data string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				} else {
					v = v[1 : len(v)-1]
				}
			} else {
				v = v[1 : len(v)-1]
			}
		}
		m[k] = v
	}
	return m
}

// OSName is PRETTY_NAME, else NAME VERSION, else ID.
func OSName(m map[string]string) string {
	if v := m["PRETTY_NAME"]; v != "" {
		return v
	}
	if v := strings.TrimSpace(m["NAME"] + " " + m["VERSION"]); v != "" {
		return v
	}
	return m["ID"]
}
