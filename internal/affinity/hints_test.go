package affinity_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/affinity"
)

func TestValidHint(t *testing.T) {
	tests := []struct {
		hint string
		want bool
	}{
		{"a", true},
		{"black-forest-labs/FLUX.1-schnell", true},
		{"user@lora+v2=1:x_y", true},
		{strings.Repeat("x", affinity.MaxHintLen), true},
		{strings.Repeat("x", affinity.MaxHintLen+1), false},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a,b", false},
		{"a\x00", false},
		{"a\r\nb", false},
		{"\x7f", false},
		{`"quoted"`, false},
		{"a;b", false},
		{"modèle", false},
		{"\xff", false},
		{"ﬂux", false},
	}
	for _, tt := range tests {
		if got := affinity.ValidHint(tt.hint); got != tt.want {
			t.Errorf("ValidHint(%q) = %v, want %v", tt.hint, got, tt.want)
		}
	}
}

func TestParseHints(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("m%d", i)
	}
	tests := []struct {
		name, header string
		want         []string
	}{
		{"empty", "", nil},
		{"only separators", " , ,\t,", nil},
		{"one", "flux", []string{"flux"}},
		{"trimmed", " a ,\tb\t, c", []string{"a", "b", "c"}},
		{"empty items dropped", "a,,b,", []string{"a", "b"}},
		{"duplicates kept once", "a,b,a, b ,c", []string{"a", "b", "c"}},
		{"exact match: case matters", "Flux,flux", []string{"Flux", "flux"}},
		{"invalid items dropped", "a, bad hint ,c\x00,d\x7f,modèle,e", []string{"a", "e"}},
		{"too long dropped", "a," + strings.Repeat("x", 257) + ",b", []string{"a", "b"}},
		{"first 64 kept", strings.Join(many, ","), many[:affinity.DefaultMaxPerRunner]},
		{"duplicates do not count towards the cap", strings.Repeat("a,", 1000) + "b", []string{"a", "b"}},
		{"100 KB single item", strings.Repeat("x", 100<<10), nil},
		{"100 KB of spaces", strings.Repeat(" ", 100<<10), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, affinity.ParseHints(tt.header)); diff != "" {
				t.Errorf("ParseHints(%.40q) (-want +got):\n%s", tt.header, diff)
			}
		})
	}
}

// A 100 KB header costs no more than the hints it yields.
func TestParseHintsLargeHeader(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, "model-%d, ", i)
	}
	header := b.String()
	got := affinity.ParseHints(header)
	if len(got) != affinity.DefaultMaxPerRunner || got[0] != "model-0" {
		t.Fatalf("got %d hints starting %q", len(got), got[:1])
	}
	allocs := testing.AllocsPerRun(100, func() { affinity.ParseHints(header) })
	if allocs > 8 { // the result slice growing to 64
		t.Errorf("ParseHints of a 100 KB header: %v allocations", allocs)
	}
}

func FuzzParseHints(f *testing.F) {
	for _, s := range []string{
		"", "a", "a,b", " a , b ,a", "a,,", "black-forest-labs/FLUX.1-schnell, sd-xl",
		"a\x00,b", "modèle,x", strings.Repeat("x,", 100), strings.Repeat("y", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got := affinity.ParseHints(header)
		if len(got) > affinity.DefaultMaxPerRunner {
			t.Fatalf("%d hints, cap %d", len(got), affinity.DefaultMaxPerRunner)
		}
		seen := map[string]bool{}
		for _, h := range got {
			if !affinity.ValidHint(h) {
				t.Fatalf("invalid hint %q returned", h)
			}
			if seen[h] {
				t.Fatalf("duplicate hint %q", h)
			}
			seen[h] = true
			if !strings.Contains(header, h) {
				t.Fatalf("hint %q is not in the header", h)
			}
		}
		// The index stores exactly what ParseHints returns.
		x := affinity.NewIndex(affinity.IndexOptions{})
		x.Report("10.0.0.1:80", header, true)
		want := slices.Sorted(slices.Values(got))
		if diff := cmp.Diff(want, x.Hints("10.0.0.1:80")); diff != "" {
			t.Fatalf("index hints (-want +got):\n%s", diff)
		}
	})
}
