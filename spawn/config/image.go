package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/spawn/dissect"
)

// DiskImage holds -i and the options of disk images. It is embedded in
// Storage.
type DiskImage struct {
	Image       string `json:"image,omitempty"`         // -i: the disk image or block device (absolute)
	ImagePolicy string `json:"image_policy,omitempty"`  // --image-policy= (checked by dissect.ParsePolicy)
	RootHash    string `json:"root_hash,omitempty"`     // --root-hash=: hex
	RootHashSig string `json:"root_hash_sig,omitempty"` // --root-hash-sig=: "base64:..." or a file
	VerityData  string `json:"verity_data,omitempty"`   // --verity-data=: the hash device (absolute)
}

// Source is where the container's root comes from, as a user named it:
// the disk image, else the directory.
func (c *Config) Source() string {
	if c.Image != "" {
		return c.Image
	}
	return c.Directory
}

// HasVerity says a verity option was given.
func (d *DiskImage) HasVerity() bool {
	return d.RootHash != "" || d.RootHashSig != "" || d.VerityData != ""
}

// Policy is the image policy to dissect with (nspawn's container policy
// when none was given).
func (d *DiskImage) Policy() (*dissect.Policy, error) {
	if d.ImagePolicy == "" {
		return dissect.ContainerPolicy, nil
	}
	p, err := dissect.ParsePolicy(d.ImagePolicy)
	if err != nil {
		return nil, fmt.Errorf("--image-policy=: %w", err)
	}
	return p, nil
}

func (p *argParser) image(v string) error {
	if v == "" {
		p.c.Image = ""
		return nil
	}
	abs, err := p.absPath(v)
	if err != nil {
		return fmt.Errorf("--image=%s: %w", v, err)
	}
	p.c.Image = abs
	return nil
}

func (p *argParser) imagePolicy(v string) error {
	if _, err := dissect.ParsePolicy(v); err != nil {
		return fmt.Errorf("--image-policy=%s: %w", v, err)
	}
	p.c.ImagePolicy = v
	return nil
}

// ParseRootHash checks a --root-hash= value: hex, at least 256 bits, as
// nspawn requires.
func ParseRootHash(v string) (string, error) {
	b, err := hex.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("--root-hash=%s is not a hexadecimal string", v)
	}
	if len(b) < 32 {
		return "", fmt.Errorf("--root-hash=%s is %d bits: a root hash has at least 256", v, 8*len(b))
	}
	return strings.ToLower(v), nil
}

func (p *argParser) rootHash(v string) error {
	h, err := ParseRootHash(v)
	if err != nil {
		return err
	}
	p.c.RootHash = h
	return nil
}

func (p *argParser) rootHashSig(v string) error {
	if b, ok := strings.CutPrefix(v, "base64:"); ok {
		if b == "" {
			return errors.New("--root-hash-sig=base64: needs the signature after the prefix")
		}
		p.c.RootHashSig = v
		return nil
	}
	abs, err := p.absPath(v)
	if err != nil {
		return fmt.Errorf("--root-hash-sig=%s: %w", v, err)
	}
	p.c.RootHashSig = abs
	return nil
}

func (p *argParser) verityData(v string) error {
	abs, err := p.absPath(v)
	if err != nil {
		return fmt.Errorf("--verity-data=%s: %w", v, err)
	}
	p.c.VerityData = abs
	return nil
}

// finishImage completes a configuration with -i: the machine name is the
// image's file name without .raw, as nspawn derives it.
func (p *argParser) finishImage() error {
	c := p.c
	if c.Machine == "" {
		c.Machine = CleanMachineName(strings.TrimSuffix(filepath.Base(c.Image), ".raw"))
		if !ValidMachineName(c.Machine) {
			return fmt.Errorf("cannot derive a machine name from image %s, please use -M NAME", c.Image)
		}
	}
	return p.finishSettings()
}

// checkImageOptions refuses what does not go with -i (or needs it), as
// nspawn's verify_arguments does.
func (c *Config) checkImageOptions() error {
	if c.Image == "" {
		switch {
		case c.ImagePolicy != "":
			return errors.New("--image-policy= only applies to disk images: add -i IMAGE")
		case c.HasVerity():
			return errors.New("--root-hash=, --root-hash-sig= and --verity-data= only apply to disk images: add -i IMAGE")
		}
		return nil
	}
	switch {
	case c.Directory != "" && c.cmdline&setDirectory != 0:
		return errors.New("please specify either -D/--directory= or -i/--image=, the combination of both is not supported")
	case c.Template != "":
		return errors.New("--template= is not supported with -i/--image= (it creates directories)")
	case c.RootHashSig != "" && c.RootHash == "":
		return errors.New("--root-hash-sig= needs --root-hash=")
	}
	return nil
}
