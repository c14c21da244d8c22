"""channelbridge core: the platform-neutral channel engine."""
