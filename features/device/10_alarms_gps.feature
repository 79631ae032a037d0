@device @alarms_gps
Feature: Alarms and GPS
  deviceAlarm carries an image only for vehicle alarms (§1.3); GPS reports
  come when 5 s have passed or the device moved 20 m (§1.2).

  @alarms @needs:alarm=<alarm_type>
  Scenario Outline: Alarm type <alarm_type> is reported
    Given the device under test is polling the reference server
    When the device raises alarm <alarm_type>
    Then an alarm of type <alarm_type> from the device arrives
    And the device broke no rule

    Examples:
      | alarm_type |
      | 0          |
      | 1          |
      | 12         |

  @gps @needs:gps
  Scenario: GPS reports follow the 5 s / 20 m rule
    Given the device under test is polling the reference server
    When the device reports its position for a while
    Then at least 3 GPS reports from the device arrive
    And the device broke no rule
