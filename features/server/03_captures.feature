@server @captures
Feature: Captures, alarms and GPS are accepted
  Captures are acknowledged with code 0, snap_time and frpic_name (§4,
  errata #19); a replayed capture (resume transfer) is acknowledged without
  error; alarms and GPS get a 2xx.

  @needs:ack=faceRecognition
  Scenario: A capture is acknowledged
    Given the reference device polls the server under test
    When the harness device uploads a capture
    Then the server acknowledged the capture
    And the server broke no rule

  @needs:ack=faceRecognition
  Scenario: A replayed capture is acknowledged without error
    Given the reference device polls the server under test
    When the harness device uploads a capture
    And the harness device uploads the same capture again
    Then the server acknowledged the capture twice
    And the server broke no rule

  @needs:ack=deviceAlarm @needs:ack=gpsReport
  Scenario: Alarms and GPS reports are accepted
    Given the reference device polls the server under test
    When the harness device raises alarm 1
    And the harness device reports its position for a while
    Then the server accepted the alarm and the GPS reports
    And the server broke no rule
