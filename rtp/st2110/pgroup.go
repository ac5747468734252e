package st2110

import "fmt"

// PGroup is the RFC 4175 pixel group of a sampling and depth: the smallest run of bytes that
// holds whole samples. Pixels is how many pixels one group covers in a line; Lines is 2 for
// 4:2:0, whose groups hold two lines' luma (the SRD's line number then names the first line).
type PGroup struct {
	Bytes, Pixels, Lines int
}

// pgroupOf returns the pixel group of sampling at depth (RFC 4175 §4.3, ST 2110-20 §6.2).
func pgroupOf(sampling string, depth int) (PGroup, error) {
	family := sampling
	for _, p := range []string{"CLYCbCr-", "ICtCp-", "YCbCr-"} {
		if len(sampling) > len(p) && sampling[:len(p)] == p {
			family = sampling[len(p):]
			break
		}
	}
	var table map[int]PGroup
	switch family {
	case "4:2:2":
		table = map[int]PGroup{8: {4, 2, 1}, 10: {5, 2, 1}, 12: {6, 2, 1}, 16: {8, 2, 1}}
	case "4:4:4", "RGB", "XYZ":
		table = map[int]PGroup{8: {3, 1, 1}, 10: {15, 4, 1}, 12: {9, 2, 1}, 16: {6, 1, 1}}
	case "4:2:0":
		// 4 pixels in 2×2, so 2 across a line pair (8 and 4 across for 10 and 16 bit).
		table = map[int]PGroup{8: {6, 2, 2}, 10: {15, 4, 2}, 12: {9, 2, 2}, 16: {12, 2, 2}}
	default:
		return PGroup{}, fmt.Errorf("sampling %q has no RFC 4175 pixel group meshgw knows", sampling)
	}
	pg, ok := table[depth]
	if !ok {
		return PGroup{}, fmt.Errorf("sampling %s: depth %d has no pixel group (want 8, 10, 12 or 16)", sampling, depth)
	}
	return pg, nil
}

// withPGroup returns a copy of v with its pixel group filled in (a Video built by hand may leave
// it out); what names the error is the caller.
func withPGroup(v *Video, what string) (Video, error) {
	if v == nil {
		return Video{}, fmt.Errorf("st2110 %s: no video format", what)
	}
	c := *v
	if c.PGroup.Bytes == 0 {
		var err error
		if c.PGroup, err = pgroupOf(c.Sampling, c.Depth); err != nil {
			return Video{}, fmt.Errorf("st2110 %s: %w", what, err)
		}
	}
	return c, nil
}
