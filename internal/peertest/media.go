package peertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// OverlayFont is the font used for burned-in frame numbers
// (Debian package fonts-dejavu-core).
const OverlayFont = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"

// ClipSpec describes a synthetic test clip made by ffmpeg from lavfi
// testsrc2 (video, H.264 without B-frames, yuv420p) and a 1 kHz sine
// (audio).  Zero fields take the defaults noted on each field.  ClipSpec
// is comparable and is used as a cache key by Media.
type ClipSpec struct {
	Seconds   int    // duration; default 4
	Width     int    // default 1280
	Height    int    // default 720
	FPS       int    // frame rate; default 25
	GOP       int    // keyframe interval in frames; default FPS
	Audio     string // "aac" (default, 48 kHz stereo), "opus" or "none"
	Container string // "ts" (MPEG-TS, default), "mp4" or "mkv"
	Overlay   bool   // burn "frame N" into the picture (needs OverlayFont)
}

func (s ClipSpec) withDefaults() ClipSpec {
	if s.Seconds == 0 {
		s.Seconds = 4
	}
	if s.Width == 0 {
		s.Width = 1280
	}
	if s.Height == 0 {
		s.Height = 720
	}
	if s.FPS == 0 {
		s.FPS = 25
	}
	if s.GOP == 0 {
		s.GOP = s.FPS
	}
	if s.Audio == "" {
		s.Audio = "aac"
	}
	if s.Container == "" {
		s.Container = "ts"
	}
	return s
}

// FileName returns the file name GenClip uses for the spec, e.g.
// "clip_1280x720_25fps_g25_4s_aac.ts".
func (s ClipSpec) FileName() string {
	s = s.withDefaults()
	ov := ""
	if s.Overlay {
		ov = "_ov"
	}
	return fmt.Sprintf("clip_%dx%d_%dfps_g%d_%ds_%s%s.%s",
		s.Width, s.Height, s.FPS, s.GOP, s.Seconds, s.Audio, ov, s.Container)
}

// FFmpegArgs returns the ffmpeg arguments that write the clip to path.
func (s ClipSpec) FFmpegArgs(path string) ([]string, error) {
	s = s.withDefaults()
	video := fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", s.Width, s.Height, s.FPS)
	if s.Overlay {
		video += fmt.Sprintf(",drawtext=fontfile=%s:text='frame %%{frame_num}':x=20:y=20:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.7",
			OverlayFont, max(12, s.Height/15))
	}
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", video}
	switch s.Audio {
	case "none":
	case "aac", "opus":
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000")
	default:
		return nil, fmt.Errorf("ClipSpec: unknown Audio %q", s.Audio)
	}
	args = append(args, "-t", fmt.Sprint(s.Seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", "0",
		"-g", fmt.Sprint(s.GOP), "-keyint_min", fmt.Sprint(s.GOP), "-sc_threshold", "0")
	switch s.Audio {
	case "aac":
		args = append(args, "-c:a", "aac", "-b:a", "128k", "-ac", "2")
	case "opus":
		args = append(args, "-c:a", "libopus", "-b:a", "64k", "-ac", "2")
	}
	switch s.Container {
	case "ts":
		args = append(args, "-f", "mpegts")
	case "mp4":
		args = append(args, "-movflags", "+faststart", "-f", "mp4")
	case "mkv":
		args = append(args, "-f", "matroska")
	default:
		return nil, fmt.Errorf("ClipSpec: unknown Container %q", s.Container)
	}
	return append(args, path), nil
}

// GenClip generates the clip described by spec into dir (typically
// t.TempDir()) with ffmpeg and returns its path.  It does not cache; use
// Media to share clips between tests.
func GenClip(t testing.TB, dir string, spec ClipSpec) string {
	t.Helper()
	Require(t, "ffmpeg")
	if spec.Overlay {
		if _, err := os.Stat(OverlayFont); err != nil {
			missing(t, "fonts-dejavu-core", err.Error())
		}
	}
	path, err := genClip(dir, spec)
	if err != nil {
		t.Fatalf("GenClip: %v", err)
	}
	return path
}

func genClip(dir string, spec ClipSpec) (string, error) {
	path := filepath.Join(dir, spec.FileName())
	args, err := spec.FFmpegArgs(path + ".part")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(path + ".part")
		return "", fmt.Errorf("ffmpeg %v: %v\n%s", args, err, out)
	}
	if err := os.Rename(path+".part", path); err != nil {
		return "", err
	}
	return path, nil
}

// Media is a cache of generated clips shared by the tests of one test
// binary: each distinct ClipSpec is generated once, on first use.  Create
// it in TestMain (or a test) with NewMedia and pass it around; it is safe
// for concurrent use.
type Media struct {
	dir   string
	owned bool

	mu    sync.Mutex
	clips map[ClipSpec]*clipEntry
}

type clipEntry struct {
	once sync.Once
	path string
	err  error
}

// NewMedia returns a clip cache writing into dir.  If dir is empty a new
// temporary directory is created, which Close removes.
func NewMedia(dir string) (*Media, error) {
	m := &Media{dir: dir, clips: map[ClipSpec]*clipEntry{}}
	if dir == "" {
		d, err := os.MkdirTemp("", "meshgw-media-")
		if err != nil {
			return nil, err
		}
		m.dir, m.owned = d, true
	}
	return m, nil
}

// Dir returns the directory the clips are written to.
func (m *Media) Dir() string { return m.dir }

// Close removes the directory if NewMedia created it.
func (m *Media) Close() error {
	if m.owned {
		return os.RemoveAll(m.dir)
	}
	return nil
}

// Clip returns the path of the clip for spec, generating it with ffmpeg on
// first use.  Concurrent callers for the same spec wait for one
// generation; a failed generation fails every caller.
func (m *Media) Clip(t testing.TB, spec ClipSpec) string {
	t.Helper()
	Require(t, "ffmpeg")
	if spec.Overlay {
		if _, err := os.Stat(OverlayFont); err != nil {
			missing(t, "fonts-dejavu-core", err.Error())
		}
	}
	key := spec.withDefaults()
	m.mu.Lock()
	e := m.clips[key]
	if e == nil {
		e = &clipEntry{}
		m.clips[key] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.path, e.err = genClip(m.dir, key) })
	if e.err != nil {
		t.Fatalf("Media.Clip: %v", e.err)
	}
	return e.path
}
