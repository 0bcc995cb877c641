"""nats.py's Services API (nats.micro) against a nats-otel service.

Run by tests/services_python.rs with NATS_URL set and a nats-otel service named
`pricing` serving `quotes.get`. Starts a nats.py micro service of its own, then:
one `$SRV.PING` discovery (both services must answer), INFO and STATS of the
nats-otel service parsed with nats.py's own response types, two requests to its
endpoint, and STATS again. Prints one JSON object with what it saw.
"""

import asyncio
import json
import os

import nats
from nats.micro import add_service
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats


async def collect(nc, subject, wait=0.7):
    """Every answer to one request (a discovery)."""
    inbox = nc.new_inbox()
    answers = []
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, b"", reply=inbox)
    try:
        while True:
            msg = await sub.next_msg(timeout=wait)
            answers.append(json.loads(msg.data))
    except nats.errors.TimeoutError:
        pass
    await sub.unsubscribe()
    return answers


async def main():
    nc = await nats.connect(os.environ["NATS_URL"])

    async def echo(request):
        await request.respond(request.data)

    py = await add_service(nc, name="pyservice", version="0.1.0", description="nats.py peer")
    await py.add_endpoint(name="echo", subject="py.echo", handler=echo)

    pings = [ServicePing.from_dict(answer) for answer in await collect(nc, "$SRV.PING")]
    info = ServiceInfo.from_dict(json.loads((await nc.request("$SRV.INFO.pricing", b"", timeout=2)).data))
    before = ServiceStats.from_dict(json.loads((await nc.request("$SRV.STATS.pricing", b"", timeout=2)).data))
    for _ in range(2):
        await nc.request("quotes.get", b"from python", timeout=2)
    after = ServiceStats.from_dict(json.loads((await nc.request("$SRV.STATS.pricing", b"", timeout=2)).data))

    def requests(stats, name):
        return next(e.num_requests for e in stats.endpoints if e.name == name)

    print(
        json.dumps(
            {
                "pinged": sorted(p.name for p in pings),
                "ping_types": sorted({p.type for p in pings}),
                "info_endpoints": [(e.name, e.subject, e.queue_group) for e in info.endpoints],
                "info_description": info.description,
                "started_year": before.started.year,
                "quote_requests_before": requests(before, "quote"),
                "quote_requests_after": requests(after, "quote"),
            }
        )
    )
    await py.stop()
    await nc.close()


asyncio.run(main())
