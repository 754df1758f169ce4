# SwaggerUi.cmake — what GET /docs and GET /openapi.json serve.
#
# include(SwaggerUi) does, at configure time:
#   * fetch npm's swagger-ui-dist (pinned version, checked against its registry SHA-512) with the
#     npm client, cache it under ${CMAKE_BINARY_DIR}/_deps (no network once cached), and copy the
#     assets /docs needs into ${FLASHSALE_SWAGGER_UI_DIR}.
# and defines:
#   flashsale_embed_openapi(<target> [SOURCE <openapi.json>])
#       Compiles src/http/openapi.json into <target> as
#       `std::string_view flashsale::http::OpenApiJson()` (generated/openapi_json.cpp).
#   flashsale_embed_docs_html(<target> [SOURCE <docs.html>])
#       Same for src/http/docs.html: `std::string_view flashsale::http::DocsHtml()`.
#   flashsale_embed_waiting_room_html(<target> [SOURCE <waiting_room.html>])
#       Same for src/http/waiting_room.html (GET /waiting-room/{id}):
#       `std::string_view flashsale::http::WaitingRoomHtml()`.
#   Editing either source re-runs CMake on the next build (CMAKE_CONFIGURE_DEPENDS); the generated
#   file is rewritten only when its content changes, so an untouched document recompiles nothing.
#
# Options and results:
#   FLASHSALE_FETCH_SWAGGER_UI (option, ON)  OFF: never run npm. A copy already cached in _deps is
#                                            still used; without one the build goes on with a
#                                            warning and /docs says the assets are missing.
#   FLASHSALE_SWAGGER_UI_DIR                 ${CMAKE_BINARY_DIR}/swagger-ui: swagger-ui.css,
#                                            swagger-ui-bundle.js, swagger-ui-standalone-preset.js,
#                                            favicon-32x32.png (+ swagger-ui's LICENSE and NOTICE).
#   FLASHSALE_SWAGGER_UI_FOUND               TRUE when those files are there.
#   FLASHSALE_SWAGGER_UI_FILES               The four asset paths (only when FOUND).
#   FLASHSALE_SWAGGER_UI_VERSION             The pinned swagger-ui-dist version.
#
# With FLASHSALE_FETCH_SWAGGER_UI ON, a failed fetch stops the configure step with the reason:
# a release build must not quietly ship a /docs page that cannot render.

include_guard(GLOBAL)
cmake_minimum_required(VERSION 3.25)

option(FLASHSALE_FETCH_SWAGGER_UI
       "Fetch swagger-ui-dist from npm at configure time (the assets of GET /docs)" ON)

# Bumping the version: update both lines. The digest is the registry's own
# (`npm view swagger-ui-dist@VER dist.integrity`, base64 -> hex), so a tampered or truncated
# tarball is refused.
set(FLASHSALE_SWAGGER_UI_VERSION "5.35.0")
set(_flashsale_swagger_ui_sha512
    "534eaba4cb56f55dd73c638179a993512af4674f63317e0826e00da44fc465b021c341bc0a0c2bcd4e18997927fe1d3008336c5dd19aad334d1c2dec53cc9551")

set(FLASHSALE_SWAGGER_UI_DIR "${CMAKE_BINARY_DIR}/swagger-ui")
set(_flashsale_swagger_ui_assets
    swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js favicon-32x32.png)
# The repository root, from this file's place (cmake/): functions below run in the caller's
# scope, where CMAKE_CURRENT_LIST_DIR names the caller's file instead.
get_filename_component(_flashsale_swagger_ui_repo_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

# Makes ${CMAKE_BINARY_DIR}/_deps/swagger-ui-dist-<ver>/package hold the extracted npm package.
# Sets <ok_var> TRUE on success, else FALSE and <reason_var> to why.
function(_flashsale_swagger_ui_fetch ok_var reason_var)
  set(${ok_var} FALSE PARENT_SCOPE)
  set(version "${FLASHSALE_SWAGGER_UI_VERSION}")
  set(deps_dir "${CMAKE_BINARY_DIR}/_deps")
  set(tarball "${deps_dir}/swagger-ui-dist-${version}.tgz")
  set(extract_dir "${deps_dir}/swagger-ui-dist-${version}")
  set(stamp "${extract_dir}/.extracted")

  if(EXISTS "${stamp}")
    set(${ok_var} TRUE PARENT_SCOPE)
    return()
  endif()

  if(EXISTS "${tarball}")
    file(SHA512 "${tarball}" actual)
    if(NOT actual STREQUAL _flashsale_swagger_ui_sha512)
      message(STATUS "swagger-ui-dist: cached ${tarball} has the wrong SHA-512; discarding it")
      file(REMOVE "${tarball}")
    endif()
  endif()

  if(NOT EXISTS "${tarball}")
    if(NOT FLASHSALE_FETCH_SWAGGER_UI)
      set(${reason_var} "FLASHSALE_FETCH_SWAGGER_UI is OFF and no copy is cached in ${deps_dir}"
          PARENT_SCOPE)
      return()
    endif()
    find_program(FLASHSALE_NPM_EXECUTABLE NAMES npm npm.cmd
                 DOC "npm client used to fetch swagger-ui-dist for GET /docs")
    if(NOT FLASHSALE_NPM_EXECUTABLE)
      set(${reason_var} "the npm client was not found on PATH (install Node.js/npm, or set "
                        "FLASHSALE_NPM_EXECUTABLE)" PARENT_SCOPE)
      return()
    endif()
    file(MAKE_DIRECTORY "${deps_dir}")
    message(STATUS "swagger-ui-dist: npm pack swagger-ui-dist@${version}")
    # Run from _deps so no package.json or .npmrc of the source tree is picked up;
    # --ignore-scripts: packing needs no lifecycle script.
    execute_process(
      COMMAND "${FLASHSALE_NPM_EXECUTABLE}" pack "swagger-ui-dist@${version}"
              --pack-destination "${deps_dir}" --ignore-scripts --loglevel=error
      WORKING_DIRECTORY "${deps_dir}"
      RESULT_VARIABLE npm_result
      OUTPUT_VARIABLE npm_output
      ERROR_VARIABLE npm_output
      TIMEOUT 300)
    if(NOT npm_result EQUAL 0 OR NOT EXISTS "${tarball}")
      string(STRIP "${npm_output}" npm_output)
      set(${reason_var} "`npm pack swagger-ui-dist@${version}` failed (${npm_result}):\n${npm_output}"
          PARENT_SCOPE)
      file(REMOVE "${tarball}")
      return()
    endif()
    file(SHA512 "${tarball}" actual)
    if(NOT actual STREQUAL _flashsale_swagger_ui_sha512)
      file(REMOVE "${tarball}")
      set(${reason_var} "swagger-ui-dist-${version}.tgz from npm has SHA-512 ${actual}, expected "
                        "${_flashsale_swagger_ui_sha512}" PARENT_SCOPE)
      return()
    endif()
  endif()

  # Extract beside the final place and rename, so an interrupted configure never leaves a
  # half-extracted tree that looks complete.
  set(partial "${extract_dir}.partial")
  file(REMOVE_RECURSE "${partial}" "${extract_dir}")
  file(MAKE_DIRECTORY "${partial}")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E tar xzf "${tarball}"
    WORKING_DIRECTORY "${partial}"
    RESULT_VARIABLE tar_result
    OUTPUT_VARIABLE tar_output
    ERROR_VARIABLE tar_output)
  if(NOT tar_result EQUAL 0)
    file(REMOVE_RECURSE "${partial}")
    file(REMOVE "${tarball}")
    set(${reason_var} "could not extract ${tarball}: ${tar_output}" PARENT_SCOPE)
    return()
  endif()
  foreach(asset IN LISTS _flashsale_swagger_ui_assets)
    if(NOT EXISTS "${partial}/package/${asset}")
      file(REMOVE_RECURSE "${partial}")
      set(${reason_var} "swagger-ui-dist@${version} has no ${asset}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  file(TOUCH "${partial}/.extracted")
  file(RENAME "${partial}" "${extract_dir}")
  set(${ok_var} TRUE PARENT_SCOPE)
endfunction()

set(FLASHSALE_SWAGGER_UI_FOUND FALSE)
unset(FLASHSALE_SWAGGER_UI_FILES)
_flashsale_swagger_ui_fetch(_flashsale_swagger_ui_ok _flashsale_swagger_ui_reason)
if(_flashsale_swagger_ui_ok)
  set(_flashsale_swagger_ui_package
      "${CMAKE_BINARY_DIR}/_deps/swagger-ui-dist-${FLASHSALE_SWAGGER_UI_VERSION}/package")
  file(MAKE_DIRECTORY "${FLASHSALE_SWAGGER_UI_DIR}")
  foreach(_flashsale_asset IN LISTS _flashsale_swagger_ui_assets ITEMS LICENSE NOTICE)
    if(EXISTS "${_flashsale_swagger_ui_package}/${_flashsale_asset}")
      file(COPY_FILE "${_flashsale_swagger_ui_package}/${_flashsale_asset}"
           "${FLASHSALE_SWAGGER_UI_DIR}/${_flashsale_asset}" ONLY_IF_DIFFERENT)
    endif()
  endforeach()
  foreach(_flashsale_asset IN LISTS _flashsale_swagger_ui_assets)
    list(APPEND FLASHSALE_SWAGGER_UI_FILES "${FLASHSALE_SWAGGER_UI_DIR}/${_flashsale_asset}")
  endforeach()
  set(FLASHSALE_SWAGGER_UI_FOUND TRUE)
  message(STATUS "swagger-ui-dist ${FLASHSALE_SWAGGER_UI_VERSION}: assets in ${FLASHSALE_SWAGGER_UI_DIR}")
elseif(FLASHSALE_FETCH_SWAGGER_UI)
  message(FATAL_ERROR
    "Could not get the Swagger UI assets for GET /docs (npm package swagger-ui-dist@"
    "${FLASHSALE_SWAGGER_UI_VERSION}): ${_flashsale_swagger_ui_reason}\n"
    "Hint: check that npm can reach its registry (`npm config get registry`, proxy settings), "
    "or configure with -DFLASHSALE_FETCH_SWAGGER_UI=OFF to build without them "
    "(GET /docs then says the assets are missing; GET /openapi.json is unaffected).")
else()
  # FOUND=FALSE means no assets: drop any left by an earlier configure.
  foreach(_flashsale_asset IN LISTS _flashsale_swagger_ui_assets)
    file(REMOVE "${FLASHSALE_SWAGGER_UI_DIR}/${_flashsale_asset}")
  endforeach()
  message(WARNING
    "Building without the Swagger UI assets: ${_flashsale_swagger_ui_reason}. "
    "GET /docs will say the assets are missing; GET /openapi.json is unaffected.")
endif()
unset(_flashsale_swagger_ui_ok)
unset(_flashsale_swagger_ui_reason)
unset(_flashsale_swagger_ui_package)
unset(_flashsale_asset)

# Writes <output>, a C++ file defining `std::string_view flashsale::http::<function>()` that
# returns the bytes of <source> as one raw string literal, and adds it to <target>.
function(_flashsale_embed_text target source output function delimiter)
  if(NOT TARGET "${target}")
    message(FATAL_ERROR "flashsale: cannot embed ${source}: '${target}' is not a target")
  endif()
  if(NOT EXISTS "${source}")
    message(FATAL_ERROR "flashsale: cannot embed ${source}: no such file")
  endif()
  # Re-run CMake whenever the source changes.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${source}")
  file(READ "${source}" content)
  string(FIND "${content}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "flashsale: ${source} contains ')${delimiter}\"', which would end the "
                        "raw string literal it is embedded in")
  endif()
  file(RELATIVE_PATH shown "${_flashsale_swagger_ui_repo_root}" "${source}")
  if(shown MATCHES "^\\.\\./")
    set(shown "${source}")
  endif()
  set(FLASHSALE_EMBED_SOURCE "${shown}")
  set(FLASHSALE_EMBED_FUNCTION "${function}")
  set(FLASHSALE_EMBED_CONTENT "${content}")
  set(FLASHSALE_EMBED_DELIMITER "${delimiter}")
  # The ""sv literal carries the length, so no strlen at run time. Only rewritten when the
  # content changes, so the target recompiles only then.
  file(CONFIGURE OUTPUT "${output}" @ONLY NEWLINE_STYLE UNIX CONTENT [=[
// Generated by cmake/SwaggerUi.cmake from @FLASHSALE_EMBED_SOURCE@. Do not edit: edit that file;
// the next build regenerates this one.
#include <string_view>

// The document may be longer than the 65,536 characters a literal must be allowed by the
// standard; GCC and Clang take far longer ones (-Wpedantic's -Woverlength-strings is about
// compilers that do not).
#if defined(__clang__)
#pragma clang diagnostic ignored "-Woverlength-strings"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Woverlength-strings"
#endif

namespace flashsale::http {

std::string_view @FLASHSALE_EMBED_FUNCTION@();

std::string_view @FLASHSALE_EMBED_FUNCTION@() {
  using namespace std::string_view_literals;
  return R"@FLASHSALE_EMBED_DELIMITER@(@FLASHSALE_EMBED_CONTENT@)@FLASHSALE_EMBED_DELIMITER@"sv;
}

}  // namespace flashsale::http
]=])
  target_sources("${target}" PRIVATE "${output}")
endfunction()

# flashsale_embed_openapi(<target> [SOURCE <file>]): GET /openapi.json's body, checked to be a
# JSON object with an "openapi" member at configure time.
function(flashsale_embed_openapi target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE" "")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "flashsale_embed_openapi: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_SOURCE)
    set(arg_SOURCE "${_flashsale_swagger_ui_repo_root}/src/http/openapi.json")
  endif()
  if(EXISTS "${arg_SOURCE}")
    file(READ "${arg_SOURCE}" json)
    string(JSON version ERROR_VARIABLE json_error GET "${json}" openapi)
    if(json_error)
      message(FATAL_ERROR "flashsale_embed_openapi: ${arg_SOURCE} is not an OpenAPI document: "
                          "${json_error}")
    endif()
  endif()
  _flashsale_embed_text("${target}" "${arg_SOURCE}"
                        "${CMAKE_BINARY_DIR}/generated/openapi_json.cpp" OpenApiJson __json__)
endfunction()

# flashsale_embed_docs_html(<target> [SOURCE <file>]): GET /docs's page.
function(flashsale_embed_docs_html target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE" "")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "flashsale_embed_docs_html: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_SOURCE)
    set(arg_SOURCE "${_flashsale_swagger_ui_repo_root}/src/http/docs.html")
  endif()
  _flashsale_embed_text("${target}" "${arg_SOURCE}"
                        "${CMAKE_BINARY_DIR}/generated/docs_html.cpp" DocsHtml __html__)
endfunction()

# flashsale_embed_waiting_room_html(<target> [SOURCE <file>]): GET /waiting-room/{id}'s page.
function(flashsale_embed_waiting_room_html target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE" "")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR
            "flashsale_embed_waiting_room_html: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_SOURCE)
    set(arg_SOURCE "${_flashsale_swagger_ui_repo_root}/src/http/waiting_room.html")
  endif()
  _flashsale_embed_text("${target}" "${arg_SOURCE}"
                        "${CMAKE_BINARY_DIR}/generated/waiting_room_html.cpp" WaitingRoomHtml
                        __html__)
endfunction()
