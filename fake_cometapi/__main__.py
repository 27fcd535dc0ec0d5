"""Run the fake CometAPI standalone: `python -m fake_cometapi --port 8765 --key KEY`.

For `make demo` and for trying the pack in a real ComfyUI without spending money. It serves
kling-video-o1 and kling-v3-omni (--refuse-v3 makes it a route without v3); each result is one
fixed clip (--video-seconds, --fps, --size), or with --follow-request what the task asked for.
"""

from __future__ import annotations

import argparse
import threading

from .server import REFUSE_V3_STYLES, VARIANTS, FakeCometAPI


class LoggedCreations(FakeCometAPI):
    """Prints one line per creation request and its answer, for a person (or a check) counting them:
    `creation answered 200: task 878106484537192522` or `creation answered 429 (code 1303)`."""

    def _create(self, rec):
        answer = super()._create(rec)
        body = answer[1] if isinstance(answer[1], dict) else {}
        task_id = (body.get("data") or {}).get("task_id") or body.get("task_id") or body.get("id")
        print(f"creation answered {answer[0]}" + (f": task {task_id}" if task_id else f" (code {body.get('code')})"),
              flush=True)
        return answer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fake_cometapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--files-port", type=int, default=0, help="port of the video file server (0: any)")
    parser.add_argument("--key", default="test-key-123", help="the Bearer key the server accepts")
    parser.add_argument("--variant", choices=VARIANTS, default="A", help="status response shape")
    parser.add_argument("--submitted-seconds", type=float, default=2.0)
    parser.add_argument("--processing-seconds", type=float, default=8.0)
    parser.add_argument("--video-seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the result video")
    parser.add_argument("--max-in-flight", type=int, default=None, metavar="N",
                        help="the account's limit of tasks in flight: a creation past it answers 429 with "
                             "Kling code 1303 and makes nothing (default: no limit)")
    parser.add_argument("--retry-after", type=float, default=None, metavar="SECONDS",
                        help="send Retry-After with every 429 (default: none)")
    parser.add_argument("--refuse-v3", choices=REFUSE_V3_STYLES, default="",
                        help="refuse kling-v3-omni as a route without it, creating nothing: 'kling' answers "
                             "HTTP 400 with Kling code 1201, 'gateway' HTTP 503 with code model_not_found "
                             "(default: serve it)")
    parser.add_argument("--follow-request", action="store_true",
                        help="make each result video what its task asked for (duration at 24 fps, 720p for std "
                             "or 1080p for pro in its aspect ratio, audio with sound on) instead of the fixed "
                             "--video-seconds/--fps/--size clip; a base edit keeps the fixed clip")
    parser.add_argument("--log-creations", action="store_true",
                        help="print one line per creation request and its answer")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    server_class = LoggedCreations if args.log_creations else FakeCometAPI
    server = server_class(args.key, variant=args.variant, submitted_seconds=args.submitted_seconds,
                          processing_seconds=args.processing_seconds, video_seconds=args.video_seconds,
                          video_fps=args.fps, video_size=(width, height), host=args.host,
                          port=args.port, files_port=args.files_port, max_in_flight=args.max_in_flight,
                          retry_after=args.retry_after, refuse_v3=args.refuse_v3,
                          follow_request=args.follow_request)
    with server:
        limit = f", at most {args.max_in_flight} tasks in flight" if args.max_in_flight is not None else ""
        v3 = f", refusing kling-v3-omni ({args.refuse_v3})" if args.refuse_v3 else ""
        print(f"Fake CometAPI (variant {args.variant}{limit}{v3}) at {server.base_url}", flush=True)
        print(f"Result videos served from {server.files_base_url}", flush=True)
        print(f"Use: COMETAPI_BASE_URL={server.base_url} COMETAPI_KEY=<the --key value>", flush=True)
        print("Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
