package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// loadTicketKey reads the ticket key from $WSAUTH_TICKET_KEY or from the
// file named by -ticket-key-file, never from the command line, which ps and
// /debug/vars show to anyone on the machine. Neither means none (nil).
func loadTicketKey(file string, getenv func(string) string) ([]byte, error) {
	env := getenv("WSAUTH_TICKET_KEY")
	if file == "" {
		k, err := parseTicketKey(env)
		if err != nil {
			return nil, fmt.Errorf("ticket key in $WSAUTH_TICKET_KEY: %w", err)
		}
		return k, nil
	}
	if env != "" {
		return nil, errors.New("ticket key: both $WSAUTH_TICKET_KEY and -ticket-key-file are given; give one")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("-ticket-key-file: %w", err)
	}
	defer f.Close()
	text, err := io.ReadAll(io.LimitReader(f, 1<<10)) // a key is 64 bytes; a bigger file is not a key
	if err != nil {
		return nil, fmt.Errorf("-ticket-key-file: %w", err)
	}
	k, err := parseTicketKey(string(text))
	switch {
	case err != nil:
		return nil, fmt.Errorf("ticket key in -ticket-key-file %s: %w", file, err)
	case k == nil:
		return nil, fmt.Errorf("ticket key in -ticket-key-file %s: the file is empty", file)
	}
	return k, nil
}

// parseTicketKey reads a ticket key: 64 hex digits, or 32 bytes in base64
// (standard or URL alphabet, padded or not), as `openssl rand -hex 32` or
// `openssl rand -base64 32` print. Empty means none.
func parseTicketKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	// The key itself is not repeated: it is a secret.
	return nil, errors.New("want 32 bytes as 64 hex digits or base64 (openssl rand -hex 32)")
}
