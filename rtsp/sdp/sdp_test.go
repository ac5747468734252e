package sdp

import "testing"

func TestParseRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "hello", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=x\r\nt=0 0\r\n"} {
		if _, _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
