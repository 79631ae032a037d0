@device @captures
Feature: Capture upload and acknowledgement
  The device POSTs capture records to /faceRecognition (§4); the server
  acknowledges with code 0 and echoes snap_time and frpic_name (errata #19).
  faceCmd makes the device capture now (§2.12, errata #23).

  @needs:task=faceCmd @needs:capture=0
  Scenario: faceCmd yields a capture
    Given the device under test is polling the reference server
    When the server queues "faceCmd"
    Then the device reports the result with code 0
    And a capture from the device arrives
    And the capture was acknowledged with code 0
    And the device broke no rule

  @needs:capture=0
  Scenario: A capture is uploaded and acknowledged
    Given the device under test is polling the reference server
    When the device makes a capture
    Then a capture from the device arrives
    And the capture was acknowledged with code 0
    And the device broke no rule
