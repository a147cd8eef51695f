// Package nsswitch adds netspawn's NSS module to the hosts line of
// nsswitch.conf and takes it out again, changing nothing else in the file
// (spacing, comments, other lines and other services stay as they were).
// It is pure: callers read and write the file.
package nsswitch

import (
	"errors"
	"fmt"
	"strings"
)

// Service is the module's name on the hosts line (libnss_netspawn.so.2).
const Service = "netspawn"

// ErrNoHostsLine is returned by Enable for a file without a hosts: line,
// where glibc's built-in default applies and there is no line to extend.
var ErrNoHostsLine = errors.New("no hosts: line")

// token is one service or one [STATUS=ACTION ...] group of a database line,
// as byte offsets into the line.
type token struct {
	start, end int
	action     bool
}

// hostsLine returns the tokens after "hosts:" when line is a hosts line
// (comments cut), and ok false otherwise.
func hostsLine(line string) (toks []token, ok bool) {
	body := line
	if i := strings.IndexByte(body, '#'); i >= 0 {
		body = body[:i]
	}
	trimmed := strings.TrimLeft(body, " \t")
	if !strings.HasPrefix(trimmed, "hosts:") {
		return nil, false
	}
	i := len(body) - len(trimmed) + len("hosts:")
	for i < len(body) {
		switch c := body[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '[':
			j := strings.IndexByte(body[i:], ']')
			end := len(body)
			if j >= 0 {
				end = i + j + 1
			}
			toks = append(toks, token{i, end, true})
			i = end
		default:
			j := i
			for j < len(body) && body[j] != ' ' && body[j] != '\t' && body[j] != '[' {
				j++
			}
			toks = append(toks, token{i, j, false})
			i = j
		}
	}
	return toks, true
}

func hasService(line string, toks []token) bool {
	for _, t := range toks {
		if !t.action && line[t.start:t.end] == Service {
			return true
		}
	}
	return false
}

// Enabled reports whether a hosts line of conf names netspawn.
func Enabled(conf string) bool {
	for _, line := range strings.Split(conf, "\n") {
		if toks, ok := hostsLine(line); ok && hasService(line, toks) {
			return true
		}
	}
	return false
}

// Enable returns conf with netspawn on its hosts line: before the first of
// resolve and dns (resolve's [!UNAVAIL=return] would end the lookup first,
// and dns would be asked for names only netspawn knows), or at the end
// when the line has neither. changed is false when netspawn was already
// there. Only the first hosts line is changed: glibc reads that one.
func Enable(conf string) (out string, changed bool, err error) {
	lines := strings.Split(conf, "\n")
	for n, line := range lines {
		toks, ok := hostsLine(line)
		if !ok {
			continue
		}
		if hasService(line, toks) {
			return conf, false, nil
		}
		if k := len(toks); k > 0 && toks[k-1].action && line[toks[k-1].end-1] != ']' {
			return conf, false, fmt.Errorf("the hosts: line %q has a [ without its ]", strings.TrimSpace(line))
		}
		at := -1
		for _, t := range toks {
			if s := line[t.start:t.end]; !t.action && (s == "resolve" || s == "dns") {
				at = t.start
				break
			}
		}
		switch {
		case at >= 0:
			line = line[:at] + Service + " " + line[at:]
		case len(toks) > 0:
			end := toks[len(toks)-1].end
			line = line[:end] + " " + Service + line[end:]
		default:
			end := strings.Index(line, "hosts:") + len("hosts:")
			line = line[:end] + " " + Service + line[end:]
		}
		lines[n] = line
		return strings.Join(lines, "\n"), true, nil
	}
	return conf, false, ErrNoHostsLine
}

// Disable returns conf with netspawn taken off every hosts line, together
// with a [STATUS=ACTION] group right after it (which belonged to it).
// changed is false when no line named it.
func Disable(conf string) (out string, changed bool) {
	lines := strings.Split(conf, "\n")
	for n, line := range lines {
		toks, ok := hostsLine(line)
		if !ok || !hasService(line, toks) {
			continue
		}
		var b strings.Builder
		prev := 0
		for i := 0; i < len(toks); i++ {
			t := toks[i]
			if t.action || line[t.start:t.end] != Service {
				continue
			}
			start, end := t.start, t.end
			if i+1 < len(toks) && toks[i+1].action {
				end = toks[i+1].end
				i++
			}
			// The blanks before it go with it, so the rest of the line
			// keeps its spacing; as the first service, the blanks after
			// it go instead, so "hosts:" keeps its own.
			for start > prev && isBlank(line[start-1]) {
				start--
			}
			if start > 0 && line[start-1] == ':' {
				e := end
				for e < len(line) && isBlank(line[e]) {
					e++
				}
				if e < len(line) {
					start, end = t.start, e
				}
			}
			b.WriteString(line[prev:start])
			prev = end
		}
		b.WriteString(line[prev:])
		lines[n] = b.String()
		changed = true
	}
	return strings.Join(lines, "\n"), changed
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }
