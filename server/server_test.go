package server

import (
	"strings"
	"testing"
	"time"
)

// TestConfigZeroAndNegative: a zero Config field means its exported
// default; a negative FailureBurst or MaxConnsPerSubject means off and
// stays negative; a negative value on any other number panics in New
// rather than quietly becoming the default.
func TestConfigZeroAndNegative(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	for _, tc := range []struct {
		field     string
		got, want any
	}{
		{"Realm", c.Realm, DefaultRealm},
		{"CookieName", c.CookieName, DefaultCookieName},
		{"Recheck", c.Recheck, DefaultRecheck},
		{"MaxMessageBytes", c.MaxMessageBytes, DefaultMaxMessageBytes},
		{"MaxConns", c.MaxConns, DefaultMaxConns},
		{"WriteTimeout", c.WriteTimeout, DefaultWriteTimeout},
		{"PingInterval", c.PingInterval, DefaultPingInterval},
		{"CloseTimeout", c.CloseTimeout, DefaultCloseTimeout},
		{"FailureBurst", c.FailureBurst, DefaultFailureBurst},
		{"FailureRefill", c.FailureRefill, DefaultFailureRefill},
		{"ThrottleMaxKeys", c.ThrottleMaxKeys, DefaultThrottleMaxKeys},
		{"MaxConnsPerSubject", c.MaxConnsPerSubject, DefaultMaxConnsPerSubject},
		{"MaxTickets", c.MaxTickets, DefaultMaxTickets},
		{"WSReject", c.WSReject, RejectHTTP},
		{"DemoTTL", c.DemoTTL, DefaultDemoTTL},
	} {
		if tc.got != tc.want {
			t.Errorf("Config{}.withDefaults().%s = %v; want %v", tc.field, tc.got, tc.want)
		}
	}

	off := Config{FailureBurst: -1, MaxConnsPerSubject: -1}.withDefaults()
	if off.FailureBurst >= 0 || off.MaxConnsPerSubject >= 0 {
		t.Errorf("negative FailureBurst, MaxConnsPerSubject after withDefaults = %d, %d; want them negative (off)",
			off.FailureBurst, off.MaxConnsPerSubject)
	}

	for field, cfg := range map[string]Config{
		"Recheck":         {Recheck: -time.Second},
		"MaxMessageBytes": {MaxMessageBytes: -1},
		"MaxConns":        {MaxConns: -1},
		"WriteTimeout":    {WriteTimeout: -1},
		"PingInterval":    {PingInterval: -1},
		"CloseTimeout":    {CloseTimeout: -1},
		"FailureRefill":   {FailureRefill: -1},
		"ThrottleMaxKeys": {ThrottleMaxKeys: -1},
		"MaxTickets":      {MaxTickets: -1},
		"DemoTTL":         {DemoTTL: -1},
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "Config."+field) {
					t.Errorf("withDefaults with a negative %s: panic %q; want a panic naming Config.%s", field, msg, field)
				}
			}()
			cfg.withDefaults()
		}()
	}
}
