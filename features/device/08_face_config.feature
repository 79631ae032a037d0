@device @face_config
Feature: SetFaceConfig range checks
  The device applies SetFaceConfig (§2.13) and refuses values outside the
  documented ranges with a non-zero code.

  @needs:task=SetFaceConfig
  Scenario Outline: <parameter> = <value> is refused
    Given the device under test is polling the reference server
    When the server queues a raw "SetFaceConfig" with "<parameter>" set to <value>
    Then the device reports the result with a non-zero code
    And the device broke no rule

    Examples:
      | parameter         | value |
      | FaceQuality       | 11    |
      | FaceMiniPixel     | 20    |
      | LivenessThreshold | 1.5   |
      | SnapMode          | 4     |
