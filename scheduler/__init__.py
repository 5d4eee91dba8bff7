"""What is due and how it is split: tenant claiming, batching, the Graph budget and throttle blocks."""
