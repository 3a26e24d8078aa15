"""What the master and the workers share: the scoreboard (heartbeats and counters in shared
memory), signal plumbing, logging and systemd notification; imports nothing of worker,
interfaces, master, config or ops."""
