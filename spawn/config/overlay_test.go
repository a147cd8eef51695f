package config

import (
	"reflect"
	"testing"
)

func TestSplitColons(t *testing.T) {
	if got := splitColons(`a\:b:c\\:d`); !reflect.DeepEqual(got, []string{"a:b", `c\`, "d"}) {
		t.Errorf("%q", got)
	}
}
