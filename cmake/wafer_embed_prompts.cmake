# Writes a C++ source that embeds the prompt templates, one entry per file, named after the file's
# stem. Run at build time: cmake -DOUTPUT=<file.cpp> -DPROMPTS_DIR=<dir> -P wafer_embed_prompts.cmake
file(GLOB prompt_files LIST_DIRECTORIES false "${PROMPTS_DIR}/*.md")
list(SORT prompt_files)
set(body "")
foreach(path IN LISTS prompt_files)
    get_filename_component(name "${path}" NAME_WE)
    file(READ "${path}" text)
    string(FIND "${text}" ")wafer_prompt\"" clash)
    if(NOT clash EQUAL -1)
        message(FATAL_ERROR "${path} contains the raw-string delimiter )wafer_prompt\"")
    endif()
    string(APPEND body "    {\"${name}\", R\"wafer_prompt(${text})wafer_prompt\"},\n")
endforeach()
set(content "// Generated from prompts/*.md by cmake/wafer_embed_prompts.cmake. Do not edit.
#include \"detail/embedded_prompts.hpp\"

namespace wafer::detail {

const std::vector<embedded_prompt>& embedded_prompts() {
    static const std::vector<embedded_prompt> all{
${body}    };
    return all;
}

} // namespace wafer::detail
")
# Only touch the output when it changes, so an unchanged prompt set does not recompile.
if(EXISTS "${OUTPUT}")
    file(READ "${OUTPUT}" old)
    if(old STREQUAL content)
        return()
    endif()
endif()
file(WRITE "${OUTPUT}" "${content}")
