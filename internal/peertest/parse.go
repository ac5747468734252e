package peertest

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	ffmpegFrameRE = regexp.MustCompile(`frame=\s*(\d+)`)
	ffmpegErrorRE = regexp.MustCompile(`(?i)concealing|error`)
	recordFinalRE = regexp.MustCompile(`(?m)^RECORD (\S+) stream(\d+) buffers=(\d+) \(final\)`)
)

// GstEOSLine is what gst-launch-1.0 prints when the pipeline reached EOS
// (the success signal when every branch ends in `identity eos-after=N`).
const GstEOSLine = `Got EOS from element "pipeline0".`

// FFmpegFrames returns the last `frame=  N` count in ffmpeg's output (with
// -nostats ffmpeg prints one final stats line, at -loglevel info or above),
// and false if there is none.
func FFmpegFrames(out string) (int, bool) {
	m := ffmpegFrameRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(m[len(m)-1][1])
	if err != nil {
		return 0, false
	}
	return n, true
}

// FFmpegErrorLines returns the lines of ffmpeg's output that match
// `concealing|error` (case-insensitive), i.e. decode errors.  Progress
// lines split by carriage returns count separately.
func FFmpegErrorLines(out string) []string {
	var bad []string
	for _, l := range splitLines(out) {
		if ffmpegErrorRE.MatchString(l) {
			bad = append(bad, l)
		}
	}
	return bad
}

// FFprobeStreams parses the `stream|key=value|...` lines that
// `ffprobe -show_entries stream=... -of compact` prints, one map per stream.
// For inputs with programs (MPEG-TS) ffprobe first prints each program's
// streams in a block that starts with "program|" and ends with an empty
// line; those duplicates are skipped.  Other lines are ignored.
func FFprobeStreams(out string) []map[string]string {
	var streams []map[string]string
	inProgram := false
	for _, l := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
		if strings.HasPrefix(l, "program|") {
			inProgram = true
			continue
		}
		if inProgram {
			inProgram = l != ""
			continue
		}
		rest, ok := strings.CutPrefix(l, "stream|")
		if !ok {
			continue
		}
		m := map[string]string{}
		for _, kv := range strings.Split(rest, "|") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "" {
				m[k] = v
			}
		}
		streams = append(streams, m)
	}
	return streams
}

// GstGotEOS reports whether gst-launch-1.0's output contains GstEOSLine.
func GstGotEOS(out string) bool { return strings.Contains(out, GstEOSLine) }

// GstPlayedThrough judges a gst-launch-1.0 reader from its output and exit error: nil when the
// pipeline reached EOS and either exited cleanly or failed only in rtspsrc while shutting down
// after EOS. The second case is a race inside rtspsrc (GStreamer 1.22), seen with
// GST_DEBUG=rtspsrc:6: on the way to NULL its CLOSE command flushes the connection while its own
// PAUSE still waits for the server's reply, and the interrupted read is posted as "Could not send
// message. (Received end-of-file)" before the server could answer. Any error before EOS, from
// another element, or a run that did not end by itself is still a failure.
func GstPlayedThrough(out string, exitErr error) error {
	eos := strings.Index(out, GstEOSLine)
	if eos < 0 {
		if exitErr != nil {
			return fmt.Errorf("no EOS: %w", exitErr)
		}
		return errors.New("exited without reaching EOS")
	}
	if exitErr == nil {
		return nil
	}
	errs := strings.Count(out, "ERROR: ")
	if errs == 0 || !strings.Contains(out, "Freeing pipeline") {
		return fmt.Errorf("reached EOS but did not end by itself: %w", exitErr)
	}
	shutdown := strings.Index(out[eos:], "Setting pipeline to NULL")
	if shutdown < 0 || strings.Count(out[:eos+shutdown], "ERROR: ") != 0 {
		return fmt.Errorf("error before the pipeline shut down: %w", exitErr)
	}
	late := out[eos+shutdown:]
	if strings.Count(late, "ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:") != errs ||
		strings.Count(late, "Could not send message.") < errs {
		return fmt.Errorf("an error other than rtspsrc's shutdown race after EOS: %w", exitErr)
	}
	return nil
}

// RecordCounts parses the camera's `RECORD /path streamN buffers=M (final)`
// lines (printed when a publisher's session ends, see StartCamera) into
// path -> stream index -> decoded buffers.  Later lines override earlier
// ones for the same path and stream.
func RecordCounts(out string) map[string]map[int]int {
	res := map[string]map[int]int{}
	for _, m := range recordFinalRE.FindAllStringSubmatch(out, -1) {
		idx, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		if res[m[1]] == nil {
			res[m[1]] = map[int]int{}
		}
		res[m[1]][idx] = n
	}
	return res
}

func splitLines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
}
