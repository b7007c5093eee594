package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestTrustedProxiesFlag: -trusted-proxies takes CIDRs or addresses,
// defaults to none, and refuses anything else at startup rather than
// trusting less (or more) than the operator wrote.
func TestTrustedProxiesFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		want    []string
		wantErr string
	}{
		{nil, nil, ""},
		{[]string{"-trusted-proxies", ""}, nil, ""},
		{[]string{"-trusted-proxies", "127.0.0.1/32"}, []string{"127.0.0.1/32"}, ""},
		{[]string{"-trusted-proxies", "10.0.0.0/8, 192.0.2.7,::1"}, []string{"10.0.0.0/8", "192.0.2.7/32", "::1/128"}, ""},
		{[]string{"-trusted-proxies", "10.0.0.0/33"}, nil, `invalid value "10.0.0.0/33" for flag -trusted-proxies`},
		{[]string{"-trusted-proxies", "proxy.internal"}, nil, `invalid value "proxy.internal" for flag -trusted-proxies`},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, io.Discard)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFlags(%q) error = %v; want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tt.args, err)
			continue
		}
		var got []string
		for _, p := range o.trustedProxies {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseFlags(%q).trustedProxies = %q; want %q", tt.args, got, tt.want)
		}
	}
}
