#!/bin/sh
# Regenerates clip.ts, the demo clip embedded in meshgw (see clip.go).
#
# Constraints it satisfies and why:
#   - 9.6 s: the loop must be a whole number of video frames (40 ms) and of
#     AAC frames (1024/48000 s = 21.33 ms), else one track leaves a hole or
#     an overlap at the seam every loop. Their least common multiple is
#     640 ms; 9.6 s = 240 video frames = 450 AAC frames exactly. clip.go
#     (Load) refuses an embedded clip that does not loop this way.
#   - 25 fps, GOP 1 s with no scene-cut keyframes: a player that joins
#     at any moment waits at most 1 s for an IDR, and the loop point (the
#     first frame) is an IDR; the last GOP before it is 0.6 s.
#   - Main profile without B-frames: decode order == presentation order, so
#     RTP timestamps are monotonic and every player can decode it.
#   - burned-in frame number and clip time: a viewer sees the stream moving.
#   - AAC-LC 48 kHz mono with a short 880 Hz beep at the start of each second:
#     audible proof that audio is flowing and roughly in sync.
#   - AAC priming and padding: the encoder puts one priming frame (1024
#     samples of delay) before the audio, which the muxer timestamps one frame
#     before the first video frame, and pads after it. The loader drops
#     whatever lies outside the video's span, leaving the 450 frames of the
#     loop. The audio source runs AUDIO_TAIL samples past the loop end,
#     continuing from the loop start, so the last kept frame (whose MDCT
#     window reaches one frame past the loop end) encodes exactly what the
#     first frame of the next loop overlaps with: the seam decodes cleanly.
#   - ~180 kbit/s video + 32 kbit/s audio keeps the file (and the binary) small.
# Output must stay below 450 KB; the package test checks it.
set -eu
cd "$(dirname "$0")"

FONT=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf
if [ -f "$FONT" ]; then
	FONTOPT="fontfile=$FONT:"
else
	FONTOPT=""
fi
LOOP_SAMPLES=460800 # 9.6 s at 48 kHz = 450 AAC frames
AUDIO_TAIL=2048     # wrapped-around samples past the loop end, see above
TEXT="drawtext=${FONTOPT}text='meshgw demo  #%{frame_num}  %{pts\\:hms}':x=12:y=h-40:fontsize=22:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8"

ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "testsrc2=size=640x360:rate=25:duration=9.6" \
	-f lavfi -i "aevalsrc='0.4*sin(2*PI*880*mod(n\,$LOOP_SAMPLES)/48000)*lt(mod(mod(n\,$LOOP_SAMPLES)/48000\,1)\,0.12)':s=48000:c=mono:d=10" \
	-vf "$TEXT" \
	-af "atrim=end_sample=$((LOOP_SAMPLES + AUDIO_TAIL))" \
	-c:v libx264 -profile:v main -preset veryslow -tune zerolatency -pix_fmt yuv420p \
	-b:v 180k -maxrate 220k -bufsize 220k \
	-x264-params "keyint=25:min-keyint=25:scenecut=0:bframes=0:rc-lookahead=0:sliced-threads=0:threads=1" \
	-c:a aac -profile:a aac_low -b:a 32k -ar 48000 -ac 1 \
	-fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
	-f mpegts -mpegts_flags +resend_headers clip.ts
