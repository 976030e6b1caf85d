"""``make bench``: run every benchmark."""

from bench import engine_cycle, modbus_write

if __name__ == "__main__":
    engine_cycle.main()
    print()
    modbus_write.main()
