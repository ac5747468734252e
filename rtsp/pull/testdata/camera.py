#!/usr/bin/python3
"""A tiny RTSP camera for the rtsp/pull e2e test: GstRtspServer serving
H.264 (RFC 6184) + AAC (RFC 3640) test signals at rtsp://127.0.0.1:PORT/cam.

Usage: camera.py PORT   -- prints "ready" once the server is attached.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 "
    "! x264enc tune=zerolatency key-int-max=25 bitrate=300 ! rtph264pay name=pay0 pt=96 config-interval=1 "
    "  audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=1 "
    "! avenc_aac ! rtpmp4gpay name=pay1 pt=97 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen on port " + port)
print("ready", flush=True)
GLib.MainLoop().run()
