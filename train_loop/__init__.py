"""Step functions, the inner loop and the outer-loop controller."""
