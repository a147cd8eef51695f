package config

import (
	"fmt"
	"strings"
)

// ParseBool parses a boolean as systemd does (parse_boolean): 1, yes, y,
// true, t, on and 0, no, n, false, f, off, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (use yes or no)", s)
}
