package localrun

// EmulatorProxy is emulatorProxy for the tests.
var EmulatorProxy = emulatorProxy
