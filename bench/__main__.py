"""``make bench``: run every benchmark."""

from bench import engine_cycle, modbus_write, sep2_parse

if __name__ == "__main__":
    engine_cycle.main()
    print()
    modbus_write.main()
    print()
    sep2_parse.main()
