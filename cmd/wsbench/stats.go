package main

import (
	"fmt"
	"slices"
)

// summary is what a figure's pairs come to: the median of the per-pair
// ratios and their interquartile range. Pairing is what makes a shared
// machine usable: a neighbour's load slows both runs of a pair, and the
// ratio of one pair keeps little of it; the median and quartiles then keep
// a few spoiled pairs from moving the answer.
type summary struct {
	median, q1, q3   float64
	medianA, medianB float64 // the medians of the two sides' own values
}

// summarize returns the summary of the pairs (a[i], b[i]): ratios a[i]/b[i].
// Pairs where b[i] is not positive are left out, as a ratio to nothing
// means nothing.
func summarize(a, b []float64) (summary, error) {
	if len(a) != len(b) {
		return summary{}, fmt.Errorf("%d values against %d: pairs need both sides", len(a), len(b))
	}
	var ratios, as, bs []float64
	for i := range a {
		if b[i] <= 0 {
			continue
		}
		ratios = append(ratios, a[i]/b[i])
		as, bs = append(as, a[i]), append(bs, b[i])
	}
	if len(ratios) == 0 {
		return summary{}, fmt.Errorf("no pair with a positive value on both sides")
	}
	return summary{
		median:  quantile(ratios, 0.5),
		q1:      quantile(ratios, 0.25),
		q3:      quantile(ratios, 0.75),
		medianA: quantile(as, 0.5),
		medianB: quantile(bs, 0.5),
	}, nil
}

// quantile returns the q-quantile of xs (0 ≤ q ≤ 1), interpolating linearly
// between the closest ranks, as R's default (type 7) and numpy's do: the
// median of an even count is the mean of the middle two. xs is not changed.
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := pos - float64(lo)
	return s[lo] + frac*(s[lo+1]-s[lo])
}

// ratioString prints a summary as docs/PERFORMANCE.md's tables do: "0.76 (0.71–0.80)".
func (s summary) ratioString() string {
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.median, s.q1, s.q3)
}
