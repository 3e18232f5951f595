"""The benchmark suite (`make bench`): request-path figures beside same-run limits."""
