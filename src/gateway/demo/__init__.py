"""The demos: the simulators and the gateway, composed through the same paths a user takes
(site file, sockets), telling the story as it happens. Above the runtime: the runtime never
imports a simulator or a demo."""
