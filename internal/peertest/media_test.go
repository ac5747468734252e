package peertest

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestClipSpecDefaults(t *testing.T) {
	if got, want := (ClipSpec{}).FileName(), "clip_1280x720_25fps_g25_4s_aac.ts"; got != want {
		t.Errorf("FileName = %q, want %q", got, want)
	}
	if _, err := (ClipSpec{Audio: "mp3"}).FFmpegArgs("x"); err == nil {
		t.Error("unknown audio accepted")
	}
}

func TestMediaClip(t *testing.T) {
	spec := ClipSpec{Seconds: 2, Width: 320, Height: 240, FPS: 25, GOP: 25, Overlay: true}
	paths := make([]string, 4)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i] = testMedia.Clip(t, spec)
		}()
	}
	wg.Wait()
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("Clip returned different paths: %q", paths)
		}
	}
	Require(t, "ffprobe")
	out := Run(context.Background(), t, "ffprobe", "-v", "error", "-count_frames",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames,sample_rate,channels",
		"-of", "compact", paths[0]).MustSucceed(60 * time.Second)
	s := FFprobeStreams(out)
	if len(s) != 2 || s[0]["codec_name"] != "h264" || s[0]["width"] != "320" || s[0]["nb_read_frames"] != "50" ||
		s[1]["codec_name"] != "aac" || s[1]["sample_rate"] != "48000" || s[1]["channels"] != "2" {
		t.Errorf("ffprobe streams = %v", s)
	}
}

func TestGenClipMP4NoAudio(t *testing.T) {
	p := GenClip(t, t.TempDir(), ClipSpec{Seconds: 1, Width: 160, Height: 120, Audio: "none", Container: "mp4"})
	Require(t, "ffprobe")
	out := Run(context.Background(), t, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
		"-of", "compact", p).MustSucceed(60 * time.Second)
	if s := FFprobeStreams(out); len(s) != 1 || s[0]["codec_name"] != "h264" {
		t.Errorf("ffprobe streams = %v", s)
	}
}
