package peertest

import (
	"errors"
	"reflect"
	"testing"
)

func TestFFmpegFrames(t *testing.T) {
	cases := []struct {
		name string
		out  string
		want int
		ok   bool
	}{
		{"nostats", "Stream #0:0: Video: h264\nframe=  125 fps= 25 q=-0.0 Lsize=N/A time=00:00:05.00 bitrate=N/A speed=1.01x    \n", 125, true},
		{"progress with CR", "frame=    1 fps=0.0 q=-0.0 size=N/A time=00:00:00.04 bitrate=N/A speed=N/A    \rframe=   50 fps=0.0 q=-0.0 Lsize=N/A time=00:00:02.00 bitrate=N/A speed= 197x    \n", 50, true},
		{"no frames", "rtsp://127.0.0.1:1/cam: Connection refused\n", 0, false},
	}
	for _, c := range cases {
		n, ok := FFmpegFrames(c.out)
		if n != c.want || ok != c.ok {
			t.Errorf("%s: FFmpegFrames = %d, %v; want %d, %v", c.name, n, ok, c.want, c.ok)
		}
	}
}

func TestFFmpegErrorLines(t *testing.T) {
	out := "Input #0, rtsp, from 'rtsp://127.0.0.1:8554/cam':\n" +
		"[h264 @ 0x55d] concealing 1760 DC, 1760 AC, 1760 MV errors in I frame\n" +
		"[h264 @ 0x55d] Error splitting the input into NAL units.\n" +
		"frame=  125 fps= 25 q=-0.0 Lsize=N/A time=00:00:05.00\n"
	got := FFmpegErrorLines(out)
	if len(got) != 2 {
		t.Fatalf("FFmpegErrorLines = %q, want 2 lines", got)
	}
	if n := len(FFmpegErrorLines("frame=  125 fps= 25\n")); n != 0 {
		t.Errorf("clean output: %d error lines", n)
	}
}

func TestFFprobeStreams(t *testing.T) {
	out := "stream|codec_name=h264|profile=Constrained Baseline|width=1280|height=720|r_frame_rate=25/1\n" +
		"[rtsp @ 0x1] some warning\n" +
		"stream|codec_name=aac|profile=LC|sample_rate=48000|channels=2\n"
	want := []map[string]string{
		{"codec_name": "h264", "profile": "Constrained Baseline", "width": "1280", "height": "720", "r_frame_rate": "25/1"},
		{"codec_name": "aac", "profile": "LC", "sample_rate": "48000", "channels": "2"},
	}
	if got := FFprobeStreams(out); !reflect.DeepEqual(got, want) {
		t.Errorf("FFprobeStreams = %v, want %v", got, want)
	}
	ts := "program|stream|codec_name=h264\nstream|codec_name=aac\n\nstream|codec_name=h264\nstream|codec_name=aac\n"
	want = []map[string]string{{"codec_name": "h264"}, {"codec_name": "aac"}}
	if got := FFprobeStreams(ts); !reflect.DeepEqual(got, want) {
		t.Errorf("FFprobeStreams(with program) = %v, want %v", got, want)
	}
	if got := FFprobeStreams("nothing\n"); got != nil {
		t.Errorf("FFprobeStreams(no streams) = %v, want nil", got)
	}
}

func TestGstGotEOS(t *testing.T) {
	ok := "Setting pipeline to PLAYING ...\nNew clock: GstSystemClock\nGot EOS from element \"pipeline0\".\nExecution ended after 0:00:04.004087274\n"
	if !GstGotEOS(ok) {
		t.Error("GstGotEOS(ok) = false")
	}
	bad := "ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:s: Could not open resource for reading and writing.\n"
	if GstGotEOS(bad) {
		t.Error("GstGotEOS(error) = true")
	}
}

func TestRecordCounts(t *testing.T) {
	out := "RECORD /pub accepts 1 stream(s)\n" +
		"RECORD /pub stream0 first-buffer caps=video/x-raw, format=(string)I420\n" +
		"RECORD /pub stream0 buffers=100\n" +
		"RECORD /pub stream0 buffers=150 (final)\n" +
		"RECORD /pubav stream0 buffers=149 (final)\n" +
		"RECORD /pubav stream1 buffers=281 (final)\n" +
		"RECORD /pub stream0 buffers=75 (final)\n"
	want := map[string]map[int]int{"/pub": {0: 75}, "/pubav": {0: 149, 1: 281}}
	if got := RecordCounts(out); !reflect.DeepEqual(got, want) {
		t.Errorf("RecordCounts = %v, want %v", got, want)
	}
}

func TestGstPlayedThrough(t *testing.T) {
	exit1 := errors.New("exit status 1")
	played := "Setting pipeline to PLAYING ...\nGot EOS from element \"pipeline0\".\nExecution ended after 0:00:02.3\n"
	// what gst-launch-1.0 1.22 printed when rtspsrc's CLOSE interrupted its own PAUSE after EOS
	race := played + "Setting pipeline to NULL ...\n" +
		"ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:s: Could not write to resource.\n" +
		"Additional debug info:\n../gst/rtsp/gstrtspsrc.c(6766): gst_rtspsrc_try_send (): /GstPipeline:pipeline0/GstRTSPSrc:s:\n" +
		"Could not send message. (Received end-of-file)\n" +
		"ERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:s: Could not write to resource.\n" +
		"Additional debug info:\n../gst/rtsp/gstrtspsrc.c(9240): gst_rtspsrc_pause (): /GstPipeline:pipeline0/GstRTSPSrc:s:\n" +
		"Could not send message. (Received end-of-file)\nFreeing pipeline ...\n"
	early := "Setting pipeline to PLAYING ...\nERROR: from element /GstPipeline:pipeline0/GstRTSPSrc:s: Could not read from resource.\n" +
		"Could not send message. (Received end-of-file)\n" + race
	other := played + "Setting pipeline to NULL ...\nERROR: from element /GstPipeline:pipeline0/GstAvDec:avdec_h264-0: Internal data stream error.\nFreeing pipeline ...\n"
	for _, c := range []struct {
		name string
		out  string
		err  error
		ok   bool
	}{
		{"clean EOS", played, nil, true},
		{"rtspsrc shutdown race", race, exit1, true},
		{"no EOS, exit 0", "Setting pipeline to PLAYING ...\n", nil, false},
		{"no EOS, exit 1", "ERROR: from element x\n", exit1, false},
		{"error before EOS", early, exit1, false},
		{"other element after EOS", other, exit1, false},
		{"killed after EOS", played, errors.New("timed out"), false},
	} {
		if err := GstPlayedThrough(c.out, c.err); (err == nil) != c.ok {
			t.Errorf("%s: GstPlayedThrough = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
