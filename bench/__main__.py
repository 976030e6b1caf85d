"""``make bench``: run every benchmark."""

from bench import (
    engine_cycle,
    modbus_write,
    oadr2_latency,
    ramp_writes,
    sep2_aggregator,
    sep2_notify,
    sep2_parse,
)

if __name__ == "__main__":
    engine_cycle.main()
    print()
    modbus_write.main()
    print()
    sep2_parse.main()
    print()
    sep2_notify.main()
    print()
    sep2_aggregator.main()
    print()
    oadr2_latency.main()
    print()
    ramp_writes.main()
