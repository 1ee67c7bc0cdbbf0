"""Understanding and dialogue: pure logic, text and events in, actions out. No I/O."""
