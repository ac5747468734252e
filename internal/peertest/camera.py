#!/usr/bin/python3
"""meshgw test camera: a GstRtspServer (gst-rtsp-server 1.22 via python3-gi).

Embedded in internal/peertest and started by peertest.StartCamera; run it
with /usr/bin/python3 (python3-gi is not visible to pyenv/venv pythons).

PLAY: rtsp://BIND:PORT/PATH serves a live videotestsrc as H.264
(I420, x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false,
rtph264pay config-interval=1) plus optional AAC or Opus audio.  Each client
gets its own pipeline unless --shared: gst-rtsp-server 1.22 can abort
(gst_rtsp_media_get_rates assertion) when clients of a shared media
connect at the same time.

RECORD: every --record PATH[:N] mount accepts ANNOUNCE/RECORD with exactly N
media sections (default 1), decodes each stream and prints
    RECORD PATH streamI first-buffer caps=...
    RECORD PATH streamI buffers=K            (every 50 buffers)
    RECORD PATH streamI buffers=K (final)    (session end or server stop)

Stdout lines: "READY rtsp://BIND:PORT/PATH" once listening (--port 0 picks a
free port), "CLIENT ..." per connection, "STOP (reason)" before exiting 0 on
SIGTERM/SIGINT or after --duration seconds.

--tls-cert/--tls-key serve RTSPS on the same port (READY then says
rtsps://); --srtp offers RTP/SAVP only, keyed by MIKEY (GStreamer's srtpenc
with a random key per stream).
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def play_launch(o):
    width, height = o.size.split("x")
    parts = [
        "videotestsrc is-live=true pattern=smpte",
        f"video/x-raw,format=I420,width={width},height={height},framerate={o.fps}/1",
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={o.gop} "
        f"bitrate={o.bitrate} sliced-threads=false",
        "rtph264pay name=pay0 pt=96 config-interval=1",
    ]
    launch = " ! ".join(parts)
    if o.audio != "none":
        audio = [
            "audiotestsrc is-live=true wave=sine freq=1000 volume=0.2",
            "audioconvert", "audioresample",
            "audio/x-raw,rate=48000,channels=2",
            "audioconvert",
        ]
        if o.audio == "aac":
            audio += ["avenc_aac bitrate=128000", "rtpmp4gpay name=pay1 pt=97"]
        else:
            audio += ["opusenc bitrate=64000", "rtpopuspay name=pay1 pt=97"]
        launch += " " + " ! ".join(audio)
    return f"( {launch} )"


def transports(spec):
    names = {
        "udp": GstRtsp.RTSPLowerTrans.UDP,
        "tcp": GstRtsp.RTSPLowerTrans.TCP,
        "mcast": GstRtsp.RTSPLowerTrans.UDP_MCAST,
        "multicast": GstRtsp.RTSPLowerTrans.UDP_MCAST,
    }
    bits = 0
    for name in filter(None, (s.strip() for s in spec.split(","))):
        if name not in names:
            raise SystemExit(f"unknown protocol {name!r} (udp, tcp, mcast)")
        bits |= int(names[name])
    return GstRtsp.RTSPLowerTrans(bits)


class RecordCounter:
    """Counts decoded buffers of every stream of one RECORD session."""

    def __init__(self, path):
        self.path = path
        self.counts = []
        self.reported = False

    def attach(self, media):
        top = media.get_element()
        i = 0
        while True:
            sink = top.get_by_name(f"count{i}")
            if sink is None:
                break
            self.counts.append(0)
            sink.connect("handoff", self.on_buffer, i)
            i += 1
        media.connect("unprepared", lambda *_: self.report())

    def on_buffer(self, _sink, _buf, pad, i):
        self.counts[i] += 1
        n = self.counts[i]
        if n == 1:
            say(f"RECORD {self.path} stream{i} first-buffer caps={pad.get_current_caps()}")
        elif n % 50 == 0:
            say(f"RECORD {self.path} stream{i} buffers={n}")

    def report(self):
        if self.reported:
            return
        self.reported = True
        for i, n in enumerate(self.counts):
            say(f"RECORD {self.path} stream{i} buffers={n} (final)")


def add_auth(server, factories, userpass, method):
    user, _, password = userpass.partition(":")
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    if method == "basic":
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    else:
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    perms = GstRtspServer.RTSPPermissions()
    for perm in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
                 GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        perms.add_permission_for_role("viewer", perm, True)
    for f in factories:
        f.set_permissions(perms)
    server.set_auth(auth)


def add_tls(server, factories, cert, key):
    """Serve TLS with cert/key; without --auth every client may play and record."""
    auth = server.get_auth()
    anonymous = auth is None
    if anonymous:
        auth = GstRtspServer.RTSPAuth()
    auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(cert, key))
    auth.set_tls_authentication_mode(Gio.TlsAuthenticationMode.NONE)
    if anonymous:
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
        auth.set_default_token(token)
        perms = GstRtspServer.RTSPPermissions()
        for perm in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
                     GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
            perms.add_permission_for_role("anonymous", perm, True)
        for f in factories:
            f.set_permissions(perms)
    server.set_auth(auth)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bind", default="127.0.0.1", help="RTSP listen address")
    ap.add_argument("--port", type=int, default=8554, help="RTSP port, 0 = any free port")
    ap.add_argument("--path", default="/cam", help="PLAY mount point")
    ap.add_argument("--video", default="h264", choices=["h264"])
    ap.add_argument("--audio", default="aac", choices=["aac", "opus", "none"])
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=25, help="x264enc key-int-max")
    ap.add_argument("--bitrate", type=int, default=1000, help="kbit/s")
    ap.add_argument("--protocols", default="udp,tcp,mcast", help="comma list of udp,tcp,mcast")
    ap.add_argument("--mcast-range", default="239.255.42.1-239.255.42.20",
                    help="multicast group pool (ports 50000-50998, ttl 1)")
    ap.add_argument("--shared", action="store_true", help="one pipeline for all clients")
    ap.add_argument("--record", action="append", default=[], metavar="PATH[:N]",
                    help="RECORD mount accepting N media (default 1); repeatable")
    ap.add_argument("--auth", metavar="USER:PASS", help="require authentication")
    ap.add_argument("--auth-method", default="digest", choices=["digest", "basic"])
    ap.add_argument("--duration", type=float, default=0, help="exit after N seconds (0 = never)")
    ap.add_argument("--tls-cert", help="PEM certificate: serve RTSPS on --port")
    ap.add_argument("--tls-key", help="PEM key of --tls-cert")
    ap.add_argument("--srtp", action="store_true", help="RTP/SAVP only (SRTP keyed by MIKEY)")
    o = ap.parse_args()

    Gst.init(None)
    loop = GLib.MainLoop()
    server = GstRtspServer.RTSPServer()
    server.set_address(o.bind)
    server.set_service(str(o.port))
    mounts = server.get_mount_points()

    pool = GstRtspServer.RTSPAddressPool()
    first, last = o.mcast_range.split("-")
    pool.add_range(first, last, 50000, 50998, 1)

    factories = []
    play = GstRtspServer.RTSPMediaFactory()
    play.set_launch(play_launch(o))
    play.set_shared(o.shared)
    play.set_protocols(transports(o.protocols))
    play.set_address_pool(pool)
    mounts.add_factory(o.path, play)
    factories.append(play)
    say(f"PLAY {o.path} {play_launch(o)}")

    counters = []
    for spec in o.record:
        path, _, n = spec.partition(":")
        n = int(n or "1")
        launch = " ".join(
            f"decodebin name=depay{i} ! queue ! fakesink name=count{i} "
            "signal-handoffs=true sync=false async=false" for i in range(n))
        rec = GstRtspServer.RTSPMediaFactory()
        rec.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        rec.set_launch(f"( {launch} )")
        unicast = [s for s in o.protocols.split(",") if s.strip() in ("udp", "tcp")]
        rec.set_protocols(transports(",".join(unicast) or "udp,tcp"))
        rec.set_latency(200)

        def configure(_factory, media, path=path):
            c = RecordCounter(path)
            counters.append(c)
            c.attach(media)

        rec.connect("media-configure", configure)
        mounts.add_factory(path, rec)
        factories.append(rec)
        say(f"RECORD {path} accepts {n} stream(s)")

    if o.srtp:
        for f in factories:
            f.set_profiles(GstRtsp.RTSPProfile.SAVP)
    if o.auth:
        add_auth(server, factories, o.auth, o.auth_method)
    if o.tls_cert:
        add_tls(server, factories, o.tls_cert, o.tls_key or o.tls_cert)

    server.connect("client-connected", lambda _s, client: say(
        f"CLIENT connected from {client.get_connection().get_ip()}"))
    if server.attach(None) == 0:
        say(f"ERROR cannot listen on {o.bind}:{o.port}")
        return 1
    scheme = "rtsps" if o.tls_cert else "rtsp"
    say(f"READY {scheme}://{o.bind}:{server.get_bound_port()}{o.path}")

    def stop(reason):
        for c in counters:
            c.report()
        say(f"STOP ({reason})")
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop, "SIGTERM")
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop, "SIGINT")
    if o.duration > 0:
        GLib.timeout_add(int(o.duration * 1000), stop, "duration")
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
