"""Support code shipped into written modules: the text of each file below its RUNTIME marker is copied
into the modules that call it. Ordinary Python here, so it is linted and tested."""
