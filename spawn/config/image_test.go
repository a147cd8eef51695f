package config

import (
	"strings"
	"testing"
)

func TestImageFlags(t *testing.T) {
	c := mustParse(t, "-i", "/var/lib/machines/web.raw", "--image-policy=root=unprotected:=absent", "cmd")
	eq(t, c.Image, "/var/lib/machines/web.raw")
	eq(t, c.Machine, "web")
	eq(t, c.Directory, "")
	eq(t, c.ImagePolicy, "root=unprotected:=absent")
	if _, err := c.Policy(); err != nil {
		t.Fatal(err)
	}
	c = mustParse(t, "--image=rel/disk", "-M", "other")
	eq(t, c.Machine, "other")
	if !strings.HasSuffix(c.Image, "/rel/disk") || !strings.HasPrefix(c.Image, "/") {
		t.Errorf("relative image not made absolute: %s", c.Image)
	}
	hash := strings.Repeat("ab", 32)
	c = mustParse(t, "-i/img.raw", "--root-hash="+strings.ToUpper(hash), "--root-hash-sig=base64:AAAA", "--verity-data=/img.verity")
	eq(t, c.RootHash, hash)
	eq(t, c.RootHashSig, "base64:AAAA")
	eq(t, c.VerityData, "/img.verity")
	eq(t, c.HasVerity(), true)
	// --volatile=yes goes with an image, as nspawn's does.
	c = mustParse(t, "-i/img.raw", "--volatile=yes")
	eq(t, c.Volatile, VolatileYes)

	for _, e := range []struct {
		args []string
		err  string
	}{
		{[]string{"-i/a.raw", "-D/x"}, "either -D/--directory= or -i/--image="},
		{[]string{"-i/a.raw", "--template=/t"}, "--template= is not supported with -i"},
		{[]string{"-i/a.raw", "--image-policy=root=sealed"}, `unknown partition policy flag "sealed"`},
		{[]string{"-i/a.raw", "--image-policy=bogus=open"}, `unknown partition designator "bogus"`},
		{[]string{"-D/x", "--image-policy=*"}, "--image-policy= only applies to disk images"},
		{[]string{"-D/x", "--root-hash=" + hash}, "only apply to disk images"},
		{[]string{"-i/a.raw", "--root-hash=xyz"}, "not a hexadecimal string"},
		{[]string{"-i/a.raw", "--root-hash=abcd"}, "is 16 bits: a root hash has at least 256"},
		{[]string{"-i/a.raw", "--root-hash-sig=base64:AA"}, "--root-hash-sig= needs --root-hash="},
		{[]string{"-i/a.raw", "--root-hash-sig=base64:"}, "needs the signature"},
		{[]string{"-i/.raw"}, "cannot derive a machine name from image"},
	} {
		_, err := parseArgs(e.args, testEnv(t))
		errContains(t, err, e.err)
	}
}
