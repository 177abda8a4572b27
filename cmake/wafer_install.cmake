include(CMakePackageConfigHelpers)

install(TARGETS wafer_agent wafer_tools wafer_testing EXPORT wafer-targets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY agent/include/ tools/include/ tests/support/include/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT wafer-targets NAMESPACE wafer:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/wafer)

configure_package_config_file(cmake/wafer-config.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/wafer-config.cmake
    INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/wafer)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/wafer-config-version.cmake
    COMPATIBILITY SameMinorVersion)
install(FILES
    ${CMAKE_CURRENT_BINARY_DIR}/wafer-config.cmake
    ${CMAKE_CURRENT_BINARY_DIR}/wafer-config-version.cmake
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/wafer)

if(TARGET wafer_cli)
    install(TARGETS wafer_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
