package stunserver

import (
	"reflect"
	"testing"
)

// TestStatsAdd checks that Add sums every field of Stats, so that a
// counter added later cannot be forgotten there.
func TestStatsAdd(t *testing.T) {
	var a, b, want Stats
	va, vb, vw := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem(), reflect.ValueOf(&want).Elem()
	for i := range va.NumField() {
		switch va.Field(i).Kind() {
		case reflect.Int64:
			va.Field(i).SetInt(int64(i + 1))
			vb.Field(i).SetInt(int64(100 * (i + 1)))
			vw.Field(i).SetInt(int64(101 * (i + 1)))
		case reflect.Uint64:
			va.Field(i).SetUint(uint64(i + 1))
			vb.Field(i).SetUint(uint64(100 * (i + 1)))
			vw.Field(i).SetUint(uint64(101 * (i + 1)))
		default:
			t.Fatalf("Stats.%s is a %v: teach Add and this test about it", va.Type().Field(i).Name, va.Field(i).Kind())
		}
	}
	got := a
	got.Add(b)
	if got != want {
		t.Errorf("a.Add(b) =\n%+v\nwant\n%+v", got, want)
	}
	got = a
	got.Add(Stats{})
	if got != a {
		t.Errorf("adding nothing changed\n%+v\nto\n%+v", a, got)
	}
}
