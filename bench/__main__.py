"""``make bench``: run every benchmark."""

from bench import engine_cycle

if __name__ == "__main__":
    engine_cycle.main()
