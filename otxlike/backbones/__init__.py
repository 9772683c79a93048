"""The backbone catalog: live introspection of installed libraries, shape inference, wrappers."""
