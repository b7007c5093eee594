package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readme returns README.md, at the root of the module.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMEQuotesExamples: every Go block of README.md but the first
// (cmd/wsauth-minimal's core, which TestREADMEQuotesTheCore checks) is
// lines of example_test.go, as they are there but for indentation, so
// that the README quotes code that compiles and runs.
func TestREADMEQuotesExamples(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	example := "\n" + dedent(string(src)) + "\n"
	blocks := goBlocks(readme(t))
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d Go blocks; want the core and at least one example", len(blocks))
	}
	for i, b := range blocks[1:] {
		if !strings.Contains(example, "\n"+dedent(b)+"\n") {
			t.Errorf("README.md's Go block %d is not in server/example_test.go:\n%s", i+2, b)
		}
	}
}

// goBlocks returns the Go code blocks of a Markdown text.
func goBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\n")
		switch {
		case !in && line == "```go":
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// dedent drops each line's leading tabs.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// TestREADMEReadingOrderListsEveryFile: README.md's "Read the code in this
// order" names every file of package server, its static files (the browser
// client among them) and package tokens, so that the map a reader follows
// matches the house.
func TestREADMEReadingOrderListsEveryFile(t *testing.T) {
	const heading = "## Read the code in this order"
	_, section, ok := strings.Cut(readme(t), heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", heading)
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	for _, pattern := range []string{"*.go", "static/*", "../tokens/*.go"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			name := "server/" + filepath.ToSlash(f)
			if after, ok := strings.CutPrefix(filepath.ToSlash(f), "../"); ok {
				name = after
			}
			if !strings.Contains(section, "`"+name+"`") {
				t.Errorf("README.md's %q does not name `%s`", heading, name)
			}
		}
	}
}
