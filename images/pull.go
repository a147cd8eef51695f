package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
)

// Verify modes for Pull.
const (
	VerifyNo       = "no"       // no check
	VerifyChecksum = "checksum" // SHA256SUMS beside the URL must list the file
	VerifyAuto     = "auto"     // check when SHA256SUMS exists, else say so
)

// ErrChecksum is a download whose SHA-256 differs from SHA256SUMS.
var ErrChecksum = errors.New("checksum mismatch")

// ParseVerify checks a --verify value.
func ParseVerify(s string) (string, error) {
	switch s {
	case VerifyNo, VerifyChecksum, VerifyAuto:
		return s, nil
	case "":
		return VerifyAuto, nil
	case "signature":
		return "", errors.New("--verify=signature is not supported (no GnuPG here): use checksum, auto or no")
	}
	return "", fmt.Errorf("--verify must be no, checksum or auto, not %q", s)
}

// SumsURL is the SHA256SUMS file beside a download URL.
func SumsURL(u *url.URL) *url.URL {
	s := *u
	s.Path = path.Join(path.Dir(u.Path), "SHA256SUMS")
	s.RawPath, s.RawQuery, s.Fragment = "", "", ""
	return &s
}

// PullOptions tunes Pull.
type PullOptions struct {
	Verify   string       // VerifyNo, VerifyChecksum or VerifyAuto (default)
	ReadOnly bool         // mark the new image read-only
	Client   *http.Client // default http.DefaultClient
	Log      io.Writer    // notes for the user (default os.Stderr)
}

// Pull downloads a tar archive (plain, gzip, xz or zstd) over http or https
// and unpacks it as image name (default: from the URL's file name). It is
// unpacked while downloading into a hidden temporary image that becomes
// name only when the download is complete and its checksum matches.
func (s *Store) Pull(ctx context.Context, rawURL, name string, o PullOptions) (*Image, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pull-tar: %q is not an http or https URL", rawURL)
	}
	file := path.Base(u.Path)
	if name == "" {
		name = NameFromPath(u.Path)
	}
	if err := s.checkFree(name); err != nil {
		return nil, err
	}
	verify, err := ParseVerify(o.Verify)
	if err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	log := o.Log
	if log == nil {
		log = os.Stderr
	}
	var want []byte
	if verify != VerifyNo {
		sums := SumsURL(u)
		data, found, err := fetchSmall(ctx, client, sums.String())
		switch {
		case err != nil:
			return nil, fmt.Errorf("pull-tar: fetching %s: %w", sums, err)
		case !found && verify == VerifyChecksum:
			return nil, fmt.Errorf("pull-tar: no %s to verify %s against (use --verify=no to skip the check)", sums, file)
		case !found:
			fmt.Fprintf(log, "No SHA256SUMS beside %s: the download is not verified.\n", rawURL)
		default:
			if want, err = ParseSHA256SUMS(data, file); err != nil {
				return nil, fmt.Errorf("pull-tar: %w", err)
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pull-tar: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pull-tar: %s: %s", rawURL, resp.Status)
	}
	if err := os.MkdirAll(s.writable(), 0o700); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	tmp := s.tempPath("pull", name)
	if err := s.newImageDir(tmp); err != nil {
		return nil, fmt.Errorf("pull-tar: %w", err)
	}
	h := sha256.New()
	p := s.progress("Downloading "+name, resp.ContentLength)
	body := io.TeeReader(p.Reader(resp.Body), h)
	err = untar(ctx, body, tmp)
	if err == nil {
		_, err = io.Copy(io.Discard, body) // the rest counts for the checksum
	}
	p.Done()
	if err != nil {
		err = fmt.Errorf("pull-tar %s: %w", rawURL, err)
	} else if want != nil {
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			err = fmt.Errorf("pull-tar %s: %w: SHA256SUMS says %s, downloaded %s; nothing was kept", file, ErrChecksum, hex.EncodeToString(want), hex.EncodeToString(got))
		} else {
			fmt.Fprintf(log, "SHA256 checksum of %s verified.\n", file)
		}
	}
	return s.finish(tmp, name, o.ReadOnly, err)
}

// fetchSmall GETs a small file; found is false on 404/410.
func fetchSmall(ctx context.Context, c *http.Client, u string) ([]byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, false, nil
	case resp.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("%s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return b, true, err
}
