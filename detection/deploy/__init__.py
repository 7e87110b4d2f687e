"""A trained or exported model scored on a validation split (`scoring`), and the checks an
exported file passes before it is used: calibration data for INT8, its score file, its metadata
(`check`)."""
